/**
 * LoRA settings: which linear layers get adapters, their rank and scaling, and PEFT's naming and
 * initialisation, so an adapter trained here loads in Python's PEFT and the other way round.
 */

export const LORA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'dense', 'fc1', 'fc2'] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];

export interface LoraSettings {
  r: number;
  alpha: number;
  /** Dropout on the LoRA branch's input during training (PEFT's lora_dropout). */
  dropout: number;
  /** rsLoRA: scaling alpha/sqrt(r) instead of alpha/r. */
  useRslora: boolean;
  targets: LoraTarget[];
  /** Layer indices that get adapters, or 'all'. */
  layers: number[] | 'all';
}

/** The paper's LoRA: r 64, alpha 64, dropout 0.05 on every linear layer of every block (not lm_head). */
export const PAPER_LORA: LoraSettings = {
  r: 64,
  alpha: 64,
  dropout: 0.05,
  useRslora: false,
  targets: [...LORA_TARGETS],
  layers: 'all',
};

/** The shapes of Phi's linear layers, from the model config. */
export interface LinearShapes {
  hidden: number;
  intermediate: number;
  layers: number;
}

export function loraScaling(s: Pick<LoraSettings, 'r' | 'alpha' | 'useRslora'>): number {
  return s.useRslora ? s.alpha / Math.sqrt(s.r) : s.alpha / s.r;
}

/** [in, out] features of each target, as nn.Linear(in, out). */
export function targetFeatures(target: LoraTarget, m: LinearShapes): { inFeatures: number; outFeatures: number } {
  switch (target) {
    case 'fc1':
      return { inFeatures: m.hidden, outFeatures: m.intermediate };
    case 'fc2':
      return { inFeatures: m.intermediate, outFeatures: m.hidden };
    default:
      return { inFeatures: m.hidden, outFeatures: m.hidden };
  }
}

/** PEFT's module path for a target in layer i, e.g. base_model.model.model.layers.0.self_attn.q_proj. */
export function peftModulePath(layer: number, target: LoraTarget): string {
  const block = target === 'fc1' || target === 'fc2' ? 'mlp' : 'self_attn';
  return `base_model.model.model.layers.${layer}.${block}.${target}`;
}

export interface LoraModule {
  layer: number;
  target: LoraTarget;
  path: string;
  inFeatures: number;
  outFeatures: number;
}

export function adaptedLayers(s: LoraSettings, numLayers: number): number[] {
  return s.layers === 'all' ? Array.from({ length: numLayers }, (_, i) => i) : [...s.layers].sort((a, b) => a - b);
}

/** Every adapted module, in PEFT's order: by layer, then in LORA_TARGETS order. */
export function loraModules(s: LoraSettings, m: LinearShapes): LoraModule[] {
  const targets = LORA_TARGETS.filter((t) => s.targets.includes(t));
  return adaptedLayers(s, m.layers).flatMap((layer) =>
    targets.map((target) => ({ layer, target, path: peftModulePath(layer, target), ...targetFeatures(target, m) })),
  );
}

export function loraParameterCount(s: LoraSettings, m: LinearShapes): number {
  return loraModules(s, m).reduce((n, mod) => n + s.r * (mod.inFeatures + mod.outFeatures), 0);
}

/** Problems with a settings object, as sentences; empty when valid. */
export function validateLoraSettings(s: LoraSettings, numLayers: number): string[] {
  const problems: string[] = [];
  if (!Number.isInteger(s.r) || s.r < 1 || s.r > 1024) problems.push(`r must be a whole number from 1 to 1024 (got ${s.r}).`);
  if (!(s.alpha > 0)) problems.push(`alpha must be positive (got ${s.alpha}).`);
  if (!(s.dropout >= 0 && s.dropout < 1)) problems.push(`dropout must be at least 0 and below 1 (got ${s.dropout}).`);
  if (!s.targets.length) problems.push('choose at least one target module.');
  const unknown = s.targets.filter((t) => !LORA_TARGETS.includes(t));
  if (unknown.length) problems.push(`unknown target modules: ${unknown.join(', ')} (Phi has ${LORA_TARGETS.join(', ')}).`);
  if (s.layers !== 'all') {
    if (!s.layers.length) problems.push('choose at least one layer.');
    const bad = s.layers.filter((l) => !Number.isInteger(l) || l < 0 || l >= numLayers);
    if (bad.length) problems.push(`layers out of range 0..${numLayers - 1}: ${bad.join(', ')}.`);
  }
  return problems;
}

/**
 * PEFT's default initialisation: A from kaiming_uniform_(a=sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)),
 * and B zero, so a fresh adapter leaves the model unchanged. `random` gives uniform numbers in [0, 1).
 */
export function initLoraA(r: number, inFeatures: number, random: () => number): Float32Array {
  const bound = 1 / Math.sqrt(inFeatures);
  const a = new Float32Array(r * inFeatures);
  for (let i = 0; i < a.length; i++) a[i] = (random() * 2 - 1) * bound;
  return a;
}
