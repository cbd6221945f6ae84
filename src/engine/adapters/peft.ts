import {
  LORA_TARGETS,
  loraModules,
  loraScaling,
  type LinearShapes,
  type LoraModule,
  type LoraSettings,
  type LoraTarget,
} from './lora-config';

/**
 * PEFT's on-disk format for LoRA adapters: adapter_config.json plus adapter_model.safetensors with
 * tensors named `base_model.model.model.layers.{i}.{self_attn|mlp}.{target}.lora_{A|B}.weight`.
 * Export writes the keys PEFT writes; import accepts the fewer keys of older PEFT versions and refuses
 * adapters for other models or with wrong shapes, saying which.
 */

export class AdapterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AdapterError';
  }
}

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

export function exportAdapterConfig(s: LoraSettings, baseModel: string | null, revision: string | null = null): AdapterConfigJson {
  return {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    r: s.r,
    lora_alpha: s.alpha,
    lora_dropout: s.dropout,
    use_rslora: s.useRslora,
    target_modules: LORA_TARGETS.filter((t) => s.targets.includes(t)),
    layers_to_transform: s.layers === 'all' ? null : [...s.layers],
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

/** Reads adapter_config.json into settings, refusing what this engine cannot apply. */
export function parseAdapterConfig(json: unknown, source = 'adapter_config.json'): LoraSettings & { baseModel: string | null } {
  if (!json || typeof json !== 'object') throw new AdapterError(`${source} is not a JSON object.`);
  const c = json as Record<string, unknown>;
  const peftType = c.peft_type ?? 'LORA';
  if (peftType !== 'LORA') throw new AdapterError(`${source}: peft_type is "${peftType}"; only LoRA adapters are supported.`);
  if (c.task_type !== undefined && c.task_type !== null && c.task_type !== 'CAUSAL_LM') {
    throw new AdapterError(`${source}: task_type is "${c.task_type}"; a causal language-model adapter (CAUSAL_LM) is needed.`);
  }
  const r = c.r;
  const alpha = c.lora_alpha ?? r;
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1) throw new AdapterError(`${source}: r must be a positive integer (found ${JSON.stringify(r)}).`);
  if (typeof alpha !== 'number' || !(alpha > 0)) throw new AdapterError(`${source}: lora_alpha must be a positive number (found ${JSON.stringify(alpha)}).`);
  if (c.use_dora === true) throw new AdapterError(`${source}: DoRA adapters (use_dora: true) are not supported.`);
  if (c.fan_in_fan_out === true) throw new AdapterError(`${source}: fan_in_fan_out adapters are for GPT-2-style Conv1D layers, not Phi.`);
  if (c.bias !== undefined && c.bias !== 'none') throw new AdapterError(`${source}: bias "${c.bias}" is not supported; adapters must have bias "none".`);
  for (const key of ['rank_pattern', 'alpha_pattern'] as const) {
    const v = c[key];
    if (v && typeof v === 'object' && Object.keys(v).length) throw new AdapterError(`${source}: per-module ${key} is not supported.`);
  }
  let targets: LoraTarget[];
  const tm = c.target_modules;
  if (typeof tm === 'string') {
    // A regular expression over module names; resolve it against Phi's six linear layers.
    const re = new RegExp(tm);
    targets = LORA_TARGETS.filter((t) => re.test(`model.layers.0.self_attn.${t}`) || re.test(`model.layers.0.mlp.${t}`));
  } else if (Array.isArray(tm)) {
    const unknown = tm.filter((t) => !LORA_TARGETS.includes(t as LoraTarget));
    if (unknown.length) {
      throw new AdapterError(
        `${source}: target_modules ${JSON.stringify(unknown)} are not layers of Phi (${LORA_TARGETS.join(', ')}). ` +
          'This adapter was made for another model architecture.',
      );
    }
    targets = LORA_TARGETS.filter((t) => tm.includes(t));
  } else throw new AdapterError(`${source}: target_modules is missing.`);
  if (!targets.length) throw new AdapterError(`${source}: target_modules selects none of Phi's linear layers.`);
  const layers = c.layers_to_transform;
  return {
    r,
    alpha,
    dropout: typeof c.lora_dropout === 'number' ? c.lora_dropout : 0,
    useRslora: c.use_rslora === true,
    targets,
    layers: Array.isArray(layers) ? (layers as number[]) : typeof layers === 'number' ? [layers] : 'all',
    baseModel: typeof c.base_model_name_or_path === 'string' ? c.base_model_name_or_path : null,
  };
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
