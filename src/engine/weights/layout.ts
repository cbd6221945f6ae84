import type { QuantScheme, StoredDType } from '../store/schema';
import type { PhiConfig } from './config';
import { isFloatSource, type SafetensorsDType } from './dtypes';
import { CheckpointError } from './errors';

/**
 * The map from Hugging Face tensor names to the engine's parameters, with the shape each must have
 * (derived from the config) and how it is stored:
 *
 *   HF name                                          engine key             shape        stored (int8 | f16 mode)
 *   model.embed_tokens.weight                        embed.weight           [V, C]       f16 | f16
 *   model.layers.{i}.self_attn.{q,k,v}_proj.weight   layers.{i}.{q,k,v}.weight [C, C]  i8  | f16
 *   model.layers.{i}.self_attn.dense.weight          layers.{i}.dense.weight [C, C]      i8  | f16
 *   model.layers.{i}.mlp.fc1.weight                  layers.{i}.fc1.weight  [I, C]       i8  | f16
 *   model.layers.{i}.mlp.fc2.weight                  layers.{i}.fc2.weight  [C, I]       i8  | f16
 *   ....bias of each linear above                    layers.{i}.<name>.bias [N]          f32
 *   model.layers.{i}.input_layernorm.{weight,bias}   layers.{i}.ln.{weight,bias} [C]     f32
 *   model.final_layernorm.{weight,bias}              final_ln.{weight,bias} [C]          f32
 *   lm_head.weight                                   lm_head.weight         [V, C]       f16 | f16
 *   lm_head.bias                                     lm_head.bias           [V]          f32
 *
 * (V vocab_size, C hidden_size, I intermediate_size.) Linear weights are [out, in] as in nn.Linear.
 */

export type { QuantScheme, StoredDType };

export const LINEAR_NAMES = ['q', 'k', 'v', 'dense', 'fc1', 'fc2'] as const;
export type LinearName = (typeof LINEAR_NAMES)[number];

/** int8: the six linear weights of each block quantised per output row; f16: every weight kept F16. */
export const QUANT_SCHEMES: readonly QuantScheme[] = ['int8', 'f16'];


export type ParamModule = LinearName | 'ln' | 'embed' | 'final_ln' | 'lm_head';

export interface ParamSpec {
  /** The engine's name, also the key in the store: 'layers.3.fc1.weight'. */
  readonly key: string;
  /** The name in Hugging Face checkpoints: 'model.layers.3.mlp.fc1.weight'. */
  readonly hfName: string;
  readonly layer: number | null;
  readonly module: ParamModule;
  readonly part: 'weight' | 'bias';
  readonly shape: readonly number[];
  /** Which config fields the shape comes from, for messages. */
  readonly shapeFrom: string;
}

const HF_LINEAR: Record<LinearName, string> = {
  q: 'self_attn.q_proj',
  k: 'self_attn.k_proj',
  v: 'self_attn.v_proj',
  dense: 'self_attn.dense',
  fc1: 'mlp.fc1',
  fc2: 'mlp.fc2',
};

/** Every parameter of a Phi model, in a fixed order: embedding, each block, final LayerNorm, head. */
export function phiParamSpecs(config: PhiConfig): ParamSpec[] {
  const { vocabSize: V, hiddenSize: C, intermediateSize: I, numLayers } = config;
  const specs: ParamSpec[] = [
    { key: 'embed.weight', hfName: 'model.embed_tokens.weight', layer: null, module: 'embed', part: 'weight', shape: [V, C], shapeFrom: '[vocab_size, hidden_size]' },
  ];
  const h = ['hidden_size', C] as const;
  const inter = ['intermediate_size', I] as const;
  // [out, in] of each linear, with the config field each side comes from.
  const linearDims: Record<LinearName, readonly [readonly [string, number], readonly [string, number]]> = {
    q: [h, h],
    k: [h, h],
    v: [h, h],
    dense: [h, h],
    fc1: [inter, h],
    fc2: [h, inter],
  };
  for (let i = 0; i < numLayers; i++) {
    const hf = `model.layers.${i}`;
    for (const part of ['weight', 'bias'] as const) {
      specs.push({ key: `layers.${i}.ln.${part}`, hfName: `${hf}.input_layernorm.${part}`, layer: i, module: 'ln', part, shape: [C], shapeFrom: '[hidden_size]' });
    }
    for (const name of LINEAR_NAMES) {
      const [[nName, N], [kName, K]] = linearDims[name];
      const base = { layer: i, module: name };
      specs.push({ ...base, key: `layers.${i}.${name}.weight`, hfName: `${hf}.${HF_LINEAR[name]}.weight`, part: 'weight', shape: [N, K], shapeFrom: `[${nName}, ${kName}]` });
      specs.push({ ...base, key: `layers.${i}.${name}.bias`, hfName: `${hf}.${HF_LINEAR[name]}.bias`, part: 'bias', shape: [N], shapeFrom: `[${nName}]` });
    }
  }
  for (const part of ['weight', 'bias'] as const) {
    specs.push({ key: `final_ln.${part}`, hfName: `model.final_layernorm.${part}`, layer: null, module: 'final_ln', part, shape: [C], shapeFrom: '[hidden_size]' });
  }
  specs.push({ key: 'lm_head.weight', hfName: 'lm_head.weight', layer: null, module: 'lm_head', part: 'weight', shape: [V, C], shapeFrom: '[vocab_size, hidden_size]' });
  specs.push({ key: 'lm_head.bias', hfName: 'lm_head.bias', layer: null, module: 'lm_head', part: 'bias', shape: [V], shapeFrom: '[vocab_size]' });
  return specs;
}

export function isLinearModule(module: ParamModule): module is LinearName {
  return (LINEAR_NAMES as readonly string[]).includes(module);
}

/** The stored dtype of a parameter under a scheme. */
export function storedDType(spec: ParamSpec, scheme: QuantScheme): StoredDType {
  if (spec.part === 'bias' || spec.shape.length === 1) return 'f32';
  if (isLinearModule(spec.module)) return scheme === 'int8' ? 'i8' : 'f16';
  return 'f16';
}

/** Bytes a parameter occupies once stored: packed data plus, for int8, one f32 scale per row. */
export function storedBytes(spec: ParamSpec, dtype: StoredDType): number {
  const count = spec.shape.reduce((a, b) => a * b, 1);
  if (dtype === 'i8') return count + spec.shape[0] * 4;
  return count * (dtype === 'f16' ? 2 : 4);
}

/** Buffers that transformers may save but that derive from the config; skipped when found. */
const DERIVED_BUFFER = /\.rotary_emb\.inv_freq$/;
/** Tensor names of the old MixFormer layout (phi-msft remote code). */
const MIXFORMER_NAME = /^(transformer\.(h\.\d+\.|embd\.)|layers\.\d+\.(mixer|mlp|ln|wte|linear)\b|lm_head\.(ln|linear)\.)/;

export interface CheckpointTensor {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
}

/** Specs by HF name, with the tensors to skip. */
export class PhiLayout {
  readonly specs: readonly ParamSpec[];
  private readonly byHf = new Map<string, ParamSpec>();
  private readonly byKey = new Map<string, ParamSpec>();

  constructor(readonly config: PhiConfig) {
    this.specs = phiParamSpecs(config);
    for (const s of this.specs) {
      this.byHf.set(s.hfName, s);
      this.byKey.set(s.key, s);
    }
  }

  spec(hfName: string): ParamSpec | undefined {
    return this.byHf.get(hfName);
  }

  specByKey(key: string): ParamSpec | undefined {
    return this.byKey.get(key);
  }

  /** Whether a checkpoint tensor is a derived buffer the engine recomputes (and so skips). */
  isIgnored(name: string): boolean {
    return DERIVED_BUFFER.test(name);
  }

  /**
   * Checks a set of tensor names (an index's weight_map, or headers) against the layout: no name
   * unknown to it, and, when `complete`, none of its parameters missing.
   */
  checkNames(names: Iterable<string>, where: string, complete: boolean): void {
    const seen = new Set<string>();
    const unexpected: string[] = [];
    for (const name of names) {
      if (this.isIgnored(name)) continue;
      if (MIXFORMER_NAME.test(name)) {
        throw new CheckpointError(
          'unsupported-model',
          `${where} holds ${name}, a tensor of the old MixFormer layout (phi-msft). Only the transformers PhiForCausalLM layout ` +
            '(model.layers.N.self_attn.q_proj.weight, ...) is supported; use a revision saved in that layout.',
          where,
          name,
        );
      }
      if (!this.byHf.has(name)) unexpected.push(name);
      seen.add(name);
    }
    if (unexpected.length) {
      throw new CheckpointError(
        'tensor-unexpected',
        `${where} holds ${unexpected.length} tensor(s) a PhiForCausalLM with ${this.config.numLayers} layers does not have: ` +
          `${unexpected.slice(0, 5).join(', ')}${unexpected.length > 5 ? ', ...' : ''}. Is config.json the one of this checkpoint?`,
        where,
        unexpected[0],
      );
    }
    if (complete) {
      const missing = this.specs.filter((s) => !seen.has(s.hfName)).map((s) => s.hfName);
      if (missing.length) {
        throw new CheckpointError(
          'tensor-missing',
          `${where} lacks ${missing.length} tensor(s) that config.json requires: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`,
          where,
          missing[0],
        );
      }
    }
  }

  /** Checks one tensor's dtype and shape; returns its spec, or null for a skipped buffer. */
  checkTensor(t: CheckpointTensor, file: string): ParamSpec | null {
    if (this.isIgnored(t.name)) return null;
    const spec = this.byHf.get(t.name);
    if (!spec) {
      this.checkNames([t.name], file, false);
      throw new Error('unreachable');
    }
    if (!isFloatSource(t.dtype)) {
      throw new CheckpointError('tensor-dtype', `${file}: ${t.name} is ${t.dtype}; parameters must be F16, BF16, F32 or F64`, file, t.name);
    }
    if (t.shape.length !== spec.shape.length || t.shape.some((d, i) => d !== spec.shape[i])) {
      throw new CheckpointError(
        'tensor-shape',
        `${file}: ${t.name} has shape [${t.shape.join(', ')}] but config.json implies [${spec.shape.join(', ')}] (${spec.shapeFrom})`,
        file,
        t.name,
      );
    }
    return spec;
  }
}
