/**
 * The precision settings of the frozen model, and when each can run. Pure: the Train and Model pages
 * read it to show a setting as unavailable (and why) without pulling in the GPU code.
 *
 * - compute path of the frozen linear layers (training and inference): 'f32', exact against the
 *   goldens and the default, or 'int8', SwitchBack (Wortsman et al. 2023): activations quantised per
 *   row to int8 and multiplied with the int8 weights by dot4I8Packed (model/phi2/frozen-linear.ts).
 * - lm_head of inference: the checkpoint's F16 table (exact) or an int8 copy made on the GPU.
 * - KV cache of inference: f32 (exact) or f16 (half the bytes a decode token reads from it).
 * Both int8 options need WGSL's packed 4 x 8-bit integer dot product, a language feature of the
 * browser's WGSL compiler (gpu/device.ts reads it; GpuContext.hasInt8Dot).
 */

/** WGSL's packed 4 x 8-bit integer dot product language feature (`dot4I8Packed`, `pack4xI8`). */
export const INT8_DOT_FEATURE = 'packed_4x8_integer_dot_product';

export type ComputePath = 'f32' | 'int8';

export const COMPUTE_PATHS: readonly ComputePath[] = ['f32', 'int8'];

/** What int8 compute trades in training, in one line (the Train page; figures from the goldens, README). */
export const INT8_COMPUTE_TRAINING =
  "Frozen layers' forward and input-gradient matmuls in int8 (SwitchBack): faster on GPUs with int8 dot products; on the goldens the loss moves by 3e-4 and the LoRA gradients by 1.6% (relative). Off: exact.";

export type LmHeadPrecision = 'f16' | 'int8';

export type KvCachePrecision = 'f32' | 'f16';

const NO_INT8_DOT = "WGSL's packed 4 x 8-bit integer dot product, which this browser lacks (Chrome and Edge have it since version 123)";

/** Why a compute path cannot run with these weights (null: not known yet) on this GPU, or null when it can. */
export function computePathProblem(path: ComputePath, weightMode: 'int8' | 'f16' | null, hasInt8Dot: boolean): string | null {
  if (path === 'f32') return null;
  if (weightMode === 'f16') return 'int8 compute needs the model loaded with int8 weights (the F16 mode is the exact one).';
  if (!hasInt8Dot) return `int8 compute needs ${NO_INT8_DOT}.`;
  return null;
}

/** Why the lm_head cannot be read at this precision here, or null when it can. */
export function lmHeadProblem(head: LmHeadPrecision, hidden: number | null, hasInt8Dot: boolean): string | null {
  if (head === 'f16') return null;
  if (hidden !== null && hidden % 4 !== 0) return `an int8 lm_head needs a hidden size divisible by 4 (four int8 a word); this model's is ${hidden}.`;
  if (!hasInt8Dot) return `an int8 lm_head is made with ${NO_INT8_DOT}.`;
  return null;
}

// ---------------------------------------------------------------------------------------------------
// Inference settings: how the loaded model generates (Demo, Evaluate, the Adapters page's analyses).

/** The loaded model's inference settings (Phi2ModelOptions takes the same fields). */
export interface InferenceOptions {
  compute: ComputePath;
  lmHead: LmHeadPrecision;
  kvCache: KvCachePrecision;
}

/** The exact settings: what a model runs with unless the user asks otherwise. */
export const DEFAULT_INFERENCE: Readonly<InferenceOptions> = Object.freeze({ compute: 'f32', lmHead: 'f16', kvCache: 'f32' });

/** What decides whether a setting can run: the loaded model (null: none yet) and the browser's WGSL. */
export interface InferenceContext {
  weightMode: 'int8' | 'f16' | null;
  hidden: number | null;
  hasInt8Dot: boolean;
}

/**
 * One on/off inference setting as the Model page shows it: the value it switches to from the exact
 * default, a one-line account of what it trades, and why it cannot run here (null when it can).
 * A new setting is a field of InferenceOptions, its default, and one entry here.
 */
export interface InferenceSwitch<K extends keyof InferenceOptions = keyof InferenceOptions> {
  key: K;
  on: InferenceOptions[K];
  label: string;
  trades: string;
  problem(ctx: InferenceContext): string | null;
}

export const INFERENCE_SWITCHES: readonly InferenceSwitch[] = [
  {
    key: 'compute',
    on: 'int8',
    label: 'int8 compute',
    trades: 'Frozen layers multiply int8 activations by the int8 weights (SwitchBack): faster matmuls on GPUs with int8 dot products; logits about 1.5% off the exact path.',
    problem: (c) => computePathProblem('int8', c.weightMode, c.hasInt8Dot),
  },
  {
    key: 'lmHead',
    on: 'int8',
    label: 'int8 lm_head',
    trades: 'Logits from an int8 copy of the F16 lm_head: 131 MB fewer bytes read a token for Phi-2 (131 MB more GPU memory); logits about 0.7% off.',
    problem: (c) => lmHeadProblem('int8', c.hidden, c.hasInt8Dot),
  },
  {
    key: 'kvCache',
    on: 'f16',
    label: 'f16 KV cache',
    trades: 'Keys and values kept in half precision: 168 MB fewer bytes read a token at 512 positions for Phi-2, half the cache memory; logits about 0.02% off.',
    problem: () => null,
  },
];

/** Each setting that cannot run here, with why. */
export function inferenceProblems(o: InferenceOptions, ctx: InferenceContext): string[] {
  return INFERENCE_SWITCHES.filter((s) => o[s.key] === s.on).flatMap((s) => s.problem(ctx) ?? []);
}

/** `o` with every setting that cannot run here back at its default. */
export function runnableInference(o: InferenceOptions, ctx: InferenceContext): InferenceOptions {
  const out = { ...o };
  for (const s of INFERENCE_SWITCHES) if (o[s.key] === s.on && s.problem(ctx)) (out as Record<string, unknown>)[s.key] = DEFAULT_INFERENCE[s.key];
  return out;
}

/** Inference settings from outside (a stored preference, a message): known values only, the default for the rest. */
export function parseInference(value: unknown): InferenceOptions {
  const v = (value && typeof value === 'object' ? value : {}) as Record<string, unknown>;
  const out: Record<string, unknown> = { ...DEFAULT_INFERENCE };
  for (const s of INFERENCE_SWITCHES) if (Object.hasOwn(v, s.key) && v[s.key] === s.on) out[s.key] = s.on;
  return out as unknown as InferenceOptions;
}

/** The settings that leave the exact model, in words ("int8 compute, int8 lm_head"); null when there are none. */
export function describeInference(o: InferenceOptions): string | null {
  const on = INFERENCE_SWITCHES.filter((s) => o[s.key] === s.on).map((s) => s.label);
  return on.length ? on.join(', ') : null;
}

export function sameInference(a: InferenceOptions, b: InferenceOptions): boolean {
  return (Object.keys(DEFAULT_INFERENCE) as (keyof InferenceOptions)[]).every((k) => a[k] === b[k]);
}
