import { briefJson } from '../untrusted-json';
import { AdapterError } from './errors';
import {
  LORA_TARGETS,
  loraModules,
  loraScaling,
  type LinearShapes,
  type LoraModule,
  type LoraSettings,
} from '../../shared/lora';
import { readModuleSelector, resolveSelection, type SelectionRules } from './target-modules';

/**
 * PEFT's on-disk format for LoRA adapters: adapter_config.json plus adapter_model.safetensors with
 * tensors named `base_model.model.model.layers.{i}.{self_attn|mlp}.{target}.lora_{A|B}.weight`.
 * Export writes the keys PEFT writes; import accepts the fewer keys of older PEFT versions and refuses
 * adapters for other models or with wrong shapes, saying which.
 */

export { AdapterError };

export interface AdapterConfigJson {
  peft_type: 'LORA';
  task_type: 'CAUSAL_LM';
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  use_rslora: boolean;
  target_modules: string[];
  layers_to_transform: number[] | null;
  base_model_name_or_path: string | null;
  bias: 'none';
  fan_in_fan_out: false;
  inference_mode: boolean;
  init_lora_weights: true;
  modules_to_save: null;
  use_dora: false;
  revision: string | null;
  rank_pattern: Record<string, never>;
  alpha_pattern: Record<string, never>;
  layers_pattern: null;
  peft_version?: string;
}

/** The LoRA settings under PEFT's own names, as adapter_config.json and peft.LoraConfig take them. */
export type PeftLoraFields = Pick<AdapterConfigJson, 'r' | 'lora_alpha' | 'lora_dropout' | 'use_rslora' | 'target_modules' | 'layers_to_transform'>;

export function peftLoraFields(s: LoraSettings): PeftLoraFields {
  return {
    r: s.r,
    lora_alpha: s.alpha,
    lora_dropout: s.dropout,
    use_rslora: s.useRslora,
    target_modules: LORA_TARGETS.filter((t) => s.targets.includes(t)),
    layers_to_transform: s.layers === 'all' ? null : [...s.layers],
  };
}

export function exportAdapterConfig(s: LoraSettings, baseModel: string | null, revision: string | null = null): AdapterConfigJson {
  return {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    ...peftLoraFields(s),
    base_model_name_or_path: baseModel,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    modules_to_save: null,
    use_dora: false,
    revision,
    rank_pattern: {},
    alpha_pattern: {},
    layers_pattern: null,
  };
}

/** Ranks above this are refused: PEFT adapters of this size class use 4-256. */
export const MAX_LORA_RANK = 1024;
/** lora_alpha above this is refused: scaling by it would swamp the model (PEFT adapters use 1-1024). */
export const MAX_LORA_ALPHA = 65536;
/** PEFT's LoraConfig default for lora_alpha. */
export const PEFT_DEFAULT_ALPHA = 8;
/** Layers assumed where no model is at hand to resolve a selection against: Phi-2's. */
export const NOMINAL_LAYERS = 32;
/** Phi-2's linear shapes: what bounds an adapter's size where no model is at hand. */
export const NOMINAL_SHAPES: LinearShapes = { hidden: 2560, intermediate: 10240, layers: NOMINAL_LAYERS };

/** adapter_config.json with every value checked, before the model it is applied to is known. */
export interface PeftLoraConfig {
  r: number;
  alpha: number;
  dropout: number;
  useRslora: boolean;
  baseModel: string | null;
  /** Which modules it adapts, as PEFT decides it (./target-modules.ts). */
  selection: SelectionRules;
}

/** Reads adapter_config.json, refusing what this engine cannot apply and values no LoRA adapter has, naming the field. */
export function readAdapterConfig(json: unknown, source = 'adapter_config.json'): PeftLoraConfig {
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new AdapterError(`${source} is not a JSON object.`);
  const c = json as Record<string, unknown>;
  const field = (key: string): unknown => (Object.hasOwn(c, key) ? c[key] : undefined);
  const shown = (v: unknown) => briefJson(v);
  const peftType = field('peft_type') ?? 'LORA';
  if (peftType !== 'LORA') throw new AdapterError(`${source}: peft_type is ${shown(peftType)}; only LoRA adapters are supported.`);
  const taskType = field('task_type');
  if (taskType !== undefined && taskType !== null && taskType !== 'CAUSAL_LM') {
    throw new AdapterError(`${source}: task_type is ${shown(taskType)}; a causal language-model adapter (CAUSAL_LM) is needed.`);
  }
  const r = field('r');
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1 || r > MAX_LORA_RANK) {
    throw new AdapterError(`${source}: r must be a positive integer of at most ${MAX_LORA_RANK} (found ${shown(r)}).`);
  }
  // PEFT's LoraConfig has lora_alpha = 8 when the file leaves it out, whatever r is.
  const alphaValue = field('lora_alpha');
  const alpha = alphaValue === undefined || alphaValue === null ? PEFT_DEFAULT_ALPHA : alphaValue;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha) || alpha <= 0 || alpha > MAX_LORA_ALPHA) {
    throw new AdapterError(`${source}: lora_alpha must be a positive number of at most ${MAX_LORA_ALPHA} (found ${shown(alpha)}).`);
  }
  const dropoutValue = field('lora_dropout');
  const dropout = dropoutValue === undefined || dropoutValue === null ? 0 : dropoutValue;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) {
    throw new AdapterError(`${source}: lora_dropout must be a probability at least 0 and below 1 (found ${shown(dropout)}).`);
  }
  const rslora = field('use_rslora');
  if (rslora !== undefined && rslora !== null && typeof rslora !== 'boolean') throw new AdapterError(`${source}: use_rslora must be true or false (found ${shown(rslora)}).`);
  if (field('use_dora') === true) throw new AdapterError(`${source}: DoRA adapters (use_dora: true) are not supported.`);
  if (field('fan_in_fan_out') === true) throw new AdapterError(`${source}: fan_in_fan_out adapters are for GPT-2-style Conv1D layers, not Phi.`);
  const bias = field('bias');
  if (bias !== undefined && bias !== 'none') throw new AdapterError(`${source}: bias ${shown(bias)} is not supported; adapters must have bias "none".`);
  for (const key of ['rank_pattern', 'alpha_pattern'] as const) {
    const v = field(key);
    if (v && typeof v === 'object' && Object.keys(v).length) throw new AdapterError(`${source}: per-module ${key} is not supported.`);
  }
  const target = readModuleSelector(field('target_modules'), 'target_modules', source);
  if (!target) throw new AdapterError(`${source}: target_modules is missing.`);
  const exclude = readModuleSelector(field('exclude_modules'), 'exclude_modules', source);
  const layersToTransform = readLayerList(field('layers_to_transform'), source);
  const patternValue = field('layers_pattern');
  const layersPattern =
    patternValue === undefined || patternValue === null
      ? []
      : typeof patternValue === 'string'
        ? [patternValue]
        : Array.isArray(patternValue) && patternValue.every((p) => typeof p === 'string') && patternValue.length <= 100
          ? (patternValue as string[])
          : (() => {
              throw new AdapterError(`${source}: layers_pattern must be a module name or a list of them (found ${shown(patternValue)}).`);
            })();
  if (target.kind === 'pattern' && (layersToTransform || layersPattern.length)) {
    // PEFT's LoraConfig refuses the same combination.
    throw new AdapterError(`${source}: layers_to_transform and layers_pattern cannot be used when target_modules is a regular expression (a string).`);
  }
  const baseModel = field('base_model_name_or_path');
  return {
    r,
    alpha,
    dropout,
    useRslora: rslora === true,
    baseModel: typeof baseModel === 'string' ? baseModel : null,
    selection: { target, exclude, layersToTransform, layersPattern },
  };
}

function readLayerList(value: unknown, source: string): number[] | null {
  if (value === undefined || value === null) return null;
  const list = typeof value === 'number' ? [value] : value;
  if (!Array.isArray(list) || list.length > 100_000 || !list.every((l) => Number.isSafeInteger(l) && (l as number) >= 0)) {
    throw new AdapterError(`${source}: layers_to_transform must be a layer number or a list of them, each 0 or more (found ${briefJson(value)}).`);
  }
  return list as number[];
}

/**
 * The LoRA settings this config gives on a model: PEFT's selection against the model's module names,
 * with layers_to_transform checked against its layers and r against its layers' sizes. Without shapes
 * (nothing to compare with yet), the selection is made on NOMINAL_LAYERS layers, or as many as
 * layers_to_transform names.
 */
export function resolveAdapterConfig(config: PeftLoraConfig, model: LinearShapes | null, source = 'adapter_config.json'): LoraSettings {
  const named = config.selection.layersToTransform ?? [];
  if (model) {
    const outside = named.filter((l) => l >= model.layers);
    if (outside.length) {
      throw new AdapterError(
        `${source}: layers_to_transform names layer${outside.length > 1 ? 's' : ''} ${outside.slice(0, 8).join(', ')}${outside.length > 8 ? ', ...' : ''}, ` +
          `but the model has ${model.layers} layers (0 to ${model.layers - 1}): the adapter was made for a larger model.`,
      );
    }
  }
  const layers = model?.layers ?? Math.max(NOMINAL_LAYERS, ...named.map((l) => l + 1));
  const { targets, layers: chosen } = resolveSelection(config.selection, layers, source);
  const settings: LoraSettings = { r: config.r, alpha: config.alpha, dropout: config.dropout, useRslora: config.useRslora, targets, layers: chosen };
  if (model) {
    for (const module of loraModules(settings, model)) {
      const limit = Math.min(module.inFeatures, module.outFeatures);
      if (config.r > limit) {
        throw new AdapterError(
          `${source}: r is ${config.r}, larger than ${module.path.replace(/^base_model\.model\./, '')} allows (${module.inFeatures} -> ${module.outFeatures}, so at most ${limit}).`,
        );
      }
    }
  }
  return settings;
}

/** Reads adapter_config.json into settings for a model with `model`'s shapes (null: none at hand, see resolveAdapterConfig). */
export function parseAdapterConfig(json: unknown, source = 'adapter_config.json', model: LinearShapes | null = null): LoraSettings & { baseModel: string | null } {
  const config = readAdapterConfig(json, source);
  return { ...resolveAdapterConfig(config, model, source), baseModel: config.baseModel };
}

const TENSOR_NAME = /^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)\.lora_([AB])(?:\.default)?\.weight$/;

export interface AdapterTensorInfo {
  shape: readonly number[];
  dtype: string;
}

export interface AdapterTensorPlan {
  module: LoraModule;
  a: string;
  b: string;
}

/**
 * Checks the adapter file's tensors against the settings and the model: every expected lora_A [r, in]
 * and lora_B [out, r] present, nothing unexpected, float dtypes. Returns the file's names per module.
 */
export function planAdapterTensors(
  s: LoraSettings,
  model: LinearShapes,
  tensors: ReadonlyMap<string, AdapterTensorInfo>,
  source = 'adapter_model.safetensors',
): AdapterTensorPlan[] {
  const byModule = new Map<string, { a?: string; b?: string }>();
  const stray: string[] = [];
  for (const name of tensors.keys()) {
    const m = TENSOR_NAME.exec(name);
    if (!m) {
      stray.push(name);
      continue;
    }
    const key = `${m[1]}.${m[3]}`;
    const entry = byModule.get(key) ?? {};
    if (m[4] === 'A') entry.a = name;
    else entry.b = name;
    byModule.set(key, entry);
  }
  if (stray.length) {
    throw new AdapterError(
      `${source} has tensors that are not LoRA weights of a Phi model: ${stray.slice(0, 3).join(', ')}` +
        `${stray.length > 3 ? ` and ${stray.length - 3} more` : ''}. modules_to_save and embedding adapters are not supported.`,
    );
  }
  const modules = loraModules(s, model);
  const plan: AdapterTensorPlan[] = [];
  for (const module of modules) {
    const entry = byModule.get(`${module.layer}.${module.target}`);
    if (!entry?.a || !entry.b) {
      throw new AdapterError(`${source} lacks lora_${entry?.a ? 'B' : 'A'} for ${module.path}, which adapter_config.json targets.`);
    }
    byModule.delete(`${module.layer}.${module.target}`);
    const a = tensors.get(entry.a)!;
    const b = tensors.get(entry.b)!;
    const wantA = [s.r, module.inFeatures];
    const wantB = [module.outFeatures, s.r];
    for (const [name, info, want] of [
      [entry.a, a, wantA],
      [entry.b, b, wantB],
    ] as const) {
      if (info.shape.length !== 2 || info.shape[0] !== want[0] || info.shape[1] !== want[1]) {
        throw new AdapterError(
          `${name} has shape [${info.shape}] but this model needs [${want}] (r ${s.r}, ${module.inFeatures} -> ${module.outFeatures}). ` +
            'The adapter was trained for a model of another size.',
        );
      }
      if (!['F32', 'F16', 'BF16'].includes(info.dtype)) throw new AdapterError(`${name} has dtype ${info.dtype}; LoRA weights must be F32, F16 or BF16.`);
    }
    plan.push({ module, a: entry.a, b: entry.b });
  }
  if (byModule.size) {
    const [first] = byModule.keys();
    const [layer] = first.split('.');
    throw new AdapterError(
      `${source} has weights for ${[...byModule.keys()].join(', ')} that adapter_config.json does not target` +
        (Number(layer) >= model.layers ? ` (the model has only ${model.layers} layers: the adapter is for a larger model)` : '') + '.',
    );
  }
  return plan;
}

export function adapterTensorNames(module: LoraModule): { a: string; b: string } {
  return { a: `${module.path}.lora_A.weight`, b: `${module.path}.lora_B.weight` };
}

export { loraScaling };
