import { formatBytes } from './bytes';
import type { ComputePath } from './compute';
import { int8ScratchBytes } from './int8-rows';
import { adaptedLayers, loraModules, loraParameterCount, type LoraSettings } from './lora';
import { stepLoraScratchFloats } from './lora-slicing';
import { DEFAULT_OPTIMIZER, optimizerStateBytes, type OptimizerSettings, type Segment } from './optimizer';
import type { TrainPlan } from './train-plan';

/**
 * GPU memory a configuration needs, item by item, computed from the model config the same way the
 * engine allocates. Browsers do not reveal how much memory a GPU has, so the app shows this estimate
 * first and then allocates everything up front inside an out-of-memory error scope: a run that does
 * not fit is refused before its first step, with this breakdown and a suggestion. Plain arithmetic, so
 * that the pages compute it as the user types.
 */

/** The dimensions a memory estimate needs (a subset of the engine's ModelDims). */
export interface ModelShape {
  vocab: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
}

export type WeightMode = 'int8' | 'f16';

export interface MemoryItem {
  name: string;
  bytes: number;
}

export interface MemoryEstimate {
  items: MemoryItem[];
  total: number;
}

/** Rows of the vocabulary processed at once by the fused lm_head + cross-entropy. */
export const LOSS_VOCAB_CHUNK = 8192;

function sum(items: MemoryItem[]): number {
  return items.reduce((s, i) => s + i.bytes, 0);
}

/** The frozen base weights on the GPU in a weight mode. */
export function weightBytes(m: ModelShape, mode: WeightMode): MemoryItem[] {
  const { vocab: V, hidden: C, intermediate: I, layers: L } = m;
  const linearElements = 4 * C * C + 2 * C * I; // q, k, v, dense, fc1, fc2
  const linearRows = 4 * C + I + C;
  const perLayer =
    (mode === 'int8' ? linearElements + linearRows * 4 : linearElements * 2) + // weights (+ per-row scales)
    linearRows * 4 + // biases, f32
    2 * C * 4; // the block's LayerNorm
  return [
    { name: 'embedding (F16)', bytes: V * C * 2 },
    { name: `${L} blocks (${mode} linear weights, f32 biases and LayerNorms)`, bytes: L * perLayer },
    { name: 'final LayerNorm + lm_head (F16) + bias', bytes: 2 * C * 4 + V * C * 2 + V * 4 },
  ];
}

export interface TrainingShape {
  batch: number;
  seq: number;
  lora: LoraSettings;
  weights: WeightMode;
  /** Keep every block's activations instead of recomputing each block in backward. */
  keepActivations: boolean;
  /** f32 AdamW unless given. */
  optimizer?: OptimizerSettings;
  /** The frozen layers' matmuls: 'f32' unless given; 'int8' keeps a quantised copy of one activation. */
  compute?: ComputePath;
}

/** Each LoRA tensor's length (A then B of every module), as the optimiser's blocks see them. */
function loraTensors(lora: LoraSettings, m: ModelShape): Segment[] {
  return loraModules(lora, m).flatMap((mod) => [
    { offset: 0, length: lora.r * mod.inFeatures },
    { offset: 0, length: mod.outFeatures * lora.r },
  ]);
}

/** The optimiser's state as an estimate item. */
export function optimizerMemory(m: ModelShape, lora: LoraSettings, optimizer: OptimizerSettings): MemoryItem {
  const P = loraParameterCount(lora, m);
  const b = optimizerStateBytes(optimizer, P, loraTensors(lora, m));
  return optimizer.kind === 'adamw'
    ? { name: 'AdamW moments (f32)', bytes: b.moments }
    : { name: `8-bit AdamW moments (1 byte each, an absmax per ${optimizer.blockSize} values)`, bytes: b.moments + b.blocks };
}

/** Bytes 8-bit moments save over f32 ones for this LoRA (positive: 8-bit is smaller). */
export function eightBitSaving(m: ModelShape, lora: LoraSettings, blockSize: 256 | 2048): number {
  return optimizerMemory(m, lora, DEFAULT_OPTIMIZER).bytes - optimizerMemory(m, lora, { kind: 'adamw-8bit', blockSize }).bytes;
}

/** Activations of one block's forward that backward needs, and its working gradients, in bytes. */
function blockActivationBytes(m: ModelShape, tokens: number): number {
  const { hidden: C, intermediate: I, heads: H } = m;
  const f = 4;
  const saved =
    tokens * C * f * 6 + // ln out, q, k, v (after rotary), attention out, branch sum
    tokens * 2 * f + // LayerNorm mean, rstd
    tokens * H * f + // attention log-sum-exp
    tokens * I * f * 2; // fc1 out (pre-gelu), gelu out
  const gradients =
    tokens * C * f * 7 + // dq, dk, dv, d attn-out, d ln-out, the two branches' (dropout's)
    tokens * I * f * 2 + // d fc1, d gelu
    tokens * H * 2 * f; // attention backward's per-query statistics
  return saved + gradients;
}

/** The LoRA products' split sums and a block's dY·B of all six layers (model/phi2/lora-step.ts). */
function loraScratchBytes(m: ModelShape, tokens: number, r: number): number {
  return (Math.max(1, stepLoraScratchFloats(tokens, m.hidden, m.intermediate, r).partials) + 6 * tokens * r) * 4;
}

export function trainingMemory(m: ModelShape, t: TrainingShape): MemoryEstimate {
  const tokens = t.batch * t.seq;
  const P = loraParameterCount(t.lora, m);
  const block = blockActivationBytes(m, tokens);
  // Each block's x·Aᵀ of its adapted layers, kept from forward to backward (256-byte aligned per block).
  const xaFloats = adaptedLayers(t.lora, m.layers).length * Math.ceil((t.lora.targets.length * tokens * t.lora.r) / 64) * 64;
  const items: MemoryItem[] = [
    ...weightBytes(m, t.weights),
    { name: `LoRA weights and gradients (${parameterCount(P)} parameters, f32)`, bytes: P * 4 * 2 },
    optimizerMemory(m, t.lora, t.optimizer ?? DEFAULT_OPTIMIZER),
    t.keepActivations
      ? { name: `activations of all ${m.layers} blocks`, bytes: m.layers * block }
      : { name: `block inputs (${m.layers} x ${tokens} tokens) + one block recomputed`, bytes: m.layers * tokens * m.hidden * 4 + block },
    { name: 'residual stream and its gradient', bytes: tokens * m.hidden * 4 * 3 },
    { name: `LoRA x·Aᵀ of every adapted layer (${tokens} tokens x r ${t.lora.r})`, bytes: xaFloats * 4 },
    {
      name: `lm_head + cross-entropy in vocabulary chunks of ${LOSS_VOCAB_CHUNK}`,
      // a chunk's logit gradients; per token the label, loss, log-sum-exp and a (max, sum) per 64 words
      bytes: tokens * Math.min(LOSS_VOCAB_CHUNK, m.vocab) * 4 + tokens * 4 * 4 + tokens * 2 * Math.ceil(m.vocab / 64) * 4,
    },
    { name: 'LoRA scratch (split reductions)', bytes: loraScratchBytes(m, tokens, t.lora.r) },
  ];
  if (t.compute === 'int8') items.push({ name: 'int8 compute: one activation quantised per row', bytes: int8ScratchBytes(tokens, Math.max(m.hidden, m.intermediate)) });
  return { items, total: sum(items) };
}

export interface InferenceShape {
  batch: number;
  /** Longest prompt + generation the KV cache holds. */
  maxTokens: number;
  weights: WeightMode;
}

export function inferenceMemory(m: ModelShape, s: InferenceShape): MemoryEstimate {
  const tokens = s.batch * s.maxTokens;
  const items: MemoryItem[] = [
    ...weightBytes(m, s.weights),
    { name: `KV cache (${m.layers} layers x ${s.batch} x ${s.maxTokens} positions, f32)`, bytes: m.layers * tokens * m.hidden * 4 * 2 },
    { name: 'activations of one pass', bytes: tokens * (m.hidden * 6 + m.intermediate) * 4 },
    { name: 'logits of the last positions', bytes: s.batch * m.vocab * 4 },
  ];
  return { items, total: sum(items) };
}

/** What to change when a training run does not fit, most effective first. */
export function suggestSmaller(m: ModelShape, t: TrainingShape, budget: number): string[] {
  const tips: string[] = [];
  const total = trainingMemory(m, t).total;
  const over = total - budget;
  if (over <= 0) return tips;
  if (t.keepActivations) tips.push('turn off "keep all activations" (each block is then recomputed in backward)');
  if (t.weights === 'f16') tips.push('use int8 weights instead of F16');
  if ((t.optimizer ?? DEFAULT_OPTIMIZER).kind === 'adamw') {
    tips.push(`use 8-bit AdamW, the paper's optimiser (saves ${formatBytes(eightBitSaving(m, t.lora, 256))})`);
  }
  if (t.batch > 1) tips.push(`lower the batch size to 1 and use gradient accumulation ${t.batch} instead`);
  for (const r of [32, 16, 8]) {
    if (r < t.lora.r && trainingMemory(m, { ...t, lora: { ...t.lora, r } }).total <= budget) {
      tips.push(`lower LoRA r from ${t.lora.r} to ${r}`);
      break;
    }
  }
  for (const seq of [384, 256, 128]) {
    if (seq < t.seq && trainingMemory(m, { ...t, seq }).total <= budget) {
      tips.push(`shorten sequences from ${t.seq} to ${seq} tokens`);
      break;
    }
  }
  if (t.lora.targets.length > 2) tips.push('adapt fewer modules (for example q_proj and v_proj only)');
  return tips;
}

/** A parameter count as people read it: "94.4M", "1.42B"; exact below a million ("147,456"), never "0.0M". */
export function parameterCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  return Math.round(n).toLocaleString('en-US');
}

/** The memory a plan needs on a model, item by item (trainingMemory with the plan's numbers). */
export function planMemory(plan: Pick<TrainPlan, 'batchSize' | 'maxLength' | 'lora' | 'optimizer' | 'compute'>, model: { shape: ModelShape; weightMode: WeightMode }): { estimate: MemoryEstimate; shape: TrainingShape } {
  const shape: TrainingShape = {
    batch: plan.batchSize,
    seq: plan.maxLength,
    lora: plan.lora,
    weights: model.weightMode,
    keepActivations: false,
    optimizer: plan.optimizer ?? DEFAULT_OPTIMIZER,
    compute: plan.compute ?? 'f32',
  };
  return { estimate: trainingMemory(model.shape, shape), shape };
}
