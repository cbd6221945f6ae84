import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, type AdapterFiles } from '../adapters/files';
import { loraModules, loraScaling, type LinearShapes, type LoraModule, type LoraSettings, type LoraTarget } from '../../shared/lora';
import { readAdapterConfigJson } from '../adapters/config-json';
import { AdapterError, parseAdapterConfig, planAdapterTensors, type AdapterTensorInfo } from '../adapters/peft';
import { parseSafetensors, type SafetensorsFile } from '../weights/safetensors';

/**
 * An adapter's LoRA factors read one module at a time from its PEFT files, for the Inspect tools:
 * decoding every tensor of a Phi-2 adapter at once would hold 377 MB of f32 beside the file, while
 * each analysis needs one module's A and B at a time.
 */

/** One adapted linear layer: its update is scaling · B · A, [out, in]. */
export interface LoraFactors {
  layer: number;
  target: LoraTarget;
  r: number;
  inFeatures: number;
  outFeatures: number;
  scaling: number;
  /** [r, in] row-major. */
  A: Float32Array;
  /** [out, r] row-major. */
  B: Float32Array;
}

const NAME = /^base_model\.model\.model\.layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])(?:\.default)?\.weight$/;

/**
 * The linear shapes an adapter implies, from its tensors alone (no model needed): the in-features of
 * q_proj/k_proj/v_proj/dense/fc1 give the hidden size, fc1's out-features or fc2's in-features the
 * intermediate size, the highest layer index the layer count. Inconsistent shapes are caught after,
 * by the same checks as an import.
 */
export function impliedShapes(tensors: ReadonlyMap<string, AdapterTensorInfo>): LinearShapes {
  let hidden = 0;
  let intermediate = 0;
  let layers = 0;
  for (const [name, info] of tensors) {
    const m = NAME.exec(name);
    if (!m || info.shape.length !== 2) continue;
    layers = Math.max(layers, Number(m[1]) + 1);
    const [rows, cols] = info.shape;
    const target = m[2];
    if (m[3] === 'A') {
      if (target === 'fc2') intermediate = cols;
      else hidden = cols;
    } else if (target === 'fc1') intermediate = rows;
    else hidden = rows;
  }
  if (!hidden || !layers) throw new AdapterError('The adapter file holds no LoRA weights of a Phi model.');
  // Without fc1 and fc2 the intermediate size is never used.
  return { hidden, intermediate: intermediate || hidden, layers };
}

export class AdapterFactors {
  readonly settings: LoraSettings;
  readonly baseModel: string | null;
  readonly scaling: number;
  readonly modules: LoraModule[];
  private readonly file: SafetensorsFile;
  private readonly names = new Map<string, { a: string; b: string }>();

  /** Checks the files as an import does: against `shapes` when a model is known, else against the shapes the tensors imply. */
  constructor(files: AdapterFiles, shapes?: LinearShapes) {
    const { baseModel, ...settings } = parseAdapterConfig(readAdapterConfigJson(files[ADAPTER_CONFIG], ADAPTER_CONFIG));
    this.settings = settings;
    this.baseModel = baseModel;
    this.scaling = loraScaling(settings);
    this.file = parseSafetensors(files[ADAPTER_WEIGHTS], ADAPTER_WEIGHTS);
    const infos = new Map(this.file.header.tensors.map((t) => [t.name, { shape: t.shape, dtype: t.dtype }]));
    const model = shapes ?? impliedShapes(infos);
    for (const p of planAdapterTensors(settings, model, infos)) this.names.set(key(p.module.layer, p.module.target), { a: p.a, b: p.b });
    this.modules = loraModules(settings, model);
  }

  has(layer: number, target: LoraTarget): boolean {
    return this.names.has(key(layer, target));
  }

  /** One module's factors, decoded to f32 now. */
  factors(module: Pick<LoraModule, 'layer' | 'target'>): LoraFactors {
    const names = this.names.get(key(module.layer, module.target));
    if (!names) throw new AdapterError(`The adapter does not adapt ${module.target} of layer ${module.layer}.`);
    const m = this.modules.find((x) => x.layer === module.layer && x.target === module.target)!;
    return {
      layer: m.layer,
      target: m.target,
      r: this.settings.r,
      inFeatures: m.inFeatures,
      outFeatures: m.outFeatures,
      scaling: this.scaling,
      A: this.file.float32(names.a),
      B: this.file.float32(names.b),
    };
  }
}

function key(layer: number, target: LoraTarget): string {
  return `${layer}.${target}`;
}
