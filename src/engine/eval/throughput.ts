import type { PreparedItem } from './prepare';

/**
 * Time estimates and measured throughput of evaluation runs.
 *
 * ## How long the paper replication takes on an RTX 4090-class GPU (estimate, method)
 * Workload, measured with Phi-2's tokenizer on the 730 prompts wrapped as the paper sent them:
 * 241,780 prompt tokens (mean 331, longest 1,138) and at most 730 x 50 = 36,500 generated tokens.
 * - Decode is bound by reading the weights once per step: ~3 GB of int8 weights at ~1 TB/s is ~3 ms per
 *   step, plus ~0.3 ms to read the sampled ids back: 3.3 ms/token one sequence at a time.
 *   Batches of 4 (paper prompts of ~380 positions fit 4 in the cache budget) divide that by up to 4, less
 *   the steps where a batch waits for its longest generation; RTX_4090_CLASS keeps the batch-1 figure, an
 *   upper bound, and the rates measured on this GPU replace it.
 * - Prefill is bound by arithmetic: ~5.0 GFLOP per token (2 x 2.5e9 parameters in the blocks; attention
 *   adds ~4*L*T*C = 0.1 GFLOP at T = 330; the lm_head runs for the last position only). Our f32 WGSL tiled
 *   matmul reached 28-30 TFLOP/s at 4096^3 on an H100 through Dawn/Vulkan (measured while building the engine); assuming ~20 TFLOP/s effective on a 4090 with
 *   int8 dequantisation in the inner loop gives ~0.25 ms/token, ~4,000 prompt tokens/s.
 * - Generation scoring, as the paper: 241,780 / 4,000 = 60 s of prefill + 36,500 x 3.3 ms = 120 s of
 *   decode: about 3 minutes at most (every generation running to 50 tokens, which the paper replication
 *   always does). With "stop when answered" (custom suites), classification answers end a few tokens
 *   into the line after the answer (~10 tokens) and lists at their first "]" (~25): ~400 x 10 + 330 x 25
 *   = 12,250 tokens, 40 s of decode: about 1.7 minutes for the same prompts.
 * - Rank classification runs the 400 classification prompts (~207,000 tokens) once more into a cache,
 *   then 1-3 tokens per candidate: about 207,000 / 4,000 = 52 s more (when not sharing the generation's
 *   prefill).
 * RTX_4090_CLASS holds these rates; estimateWorkMs applies them (or the rates measured on this GPU) to
 * any run's workload.
 */

/** The GPU work of a set of items: what time estimates are made of. */
export interface Workload {
  items: number;
  /** Prompt tokens of the items that generate (their prefill). */
  promptTokens: number;
  /** Decode steps (forward passes after the first), or null: the measured mean per item applies. */
  decodeSteps: number | null;
  /** Token positions run to score candidates (the prompt once, then each candidate's tokens). */
  rankTokens: number;
}

/** The workload of prepared items; decodeSteps is the upper bound (every generation using its budget). */
export function workloadOf(prepared: readonly PreparedItem[]): Workload {
  let promptTokens = 0;
  let decodeSteps = 0;
  let rankTokens = 0;
  for (const p of prepared) {
    if (p.newTokenBudget > 0) {
      promptTokens += p.promptIds.length;
      decodeSteps += p.newTokenBudget - 1;
    }
    if (p.candidates) rankTokens += p.promptIds.length - 1 + p.candidates.ids.reduce((a, c) => a + c.length, 0);
  }
  return { items: prepared.length, promptTokens, decodeSteps, rankTokens };
}

export function addWorkloads(a: Workload, b: Workload): Workload {
  return {
    items: a.items + b.items,
    promptTokens: a.promptTokens + b.promptTokens,
    decodeSteps: a.decodeSteps === null || b.decodeSteps === null ? null : a.decodeSteps + b.decodeSteps,
    rankTokens: a.rankTokens + b.rankTokens,
  };
}

export interface ThroughputRates {
  /** Prompt tokens per second in a generation's first forward pass. */
  prefillTokensPerSecond: number;
  /** Milliseconds per decode step (one new token, read back). */
  decodeMsPerToken: number;
  /** Token positions per second while scoring candidates. */
  rankTokensPerSecond: number;
}

/** An RTX 4090-class GPU running this engine with int8 weights: see the method at the top of this file. */
export const RTX_4090_CLASS: ThroughputRates = { prefillTokensPerSecond: 4000, decodeMsPerToken: 3.3, rankTokensPerSecond: 4000 };

/** Milliseconds a workload takes at given rates; decodeSteps null counts `stepsPerItem` per item. */
export function estimateWorkMs(work: Workload, rates: ThroughputRates, stepsPerItem = 0): number {
  const steps = work.decodeSteps ?? work.items * stepsPerItem;
  return (work.promptTokens / rates.prefillTokensPerSecond + work.rankTokens / rates.rankTokensPerSecond) * 1000 + steps * rates.decodeMsPerToken;
}

/**
 * Measured throughput, kept across the runs of one request (base model and adapters run the same
 * items), so later runs start with a good estimate. The rates leave out the first generation batch and
 * the first candidate batch once a later one is measured: their time is mostly compiling the GPU
 * kernels, once per model load, and would make every figure after them read too slow.
 */
export class ThroughputMeter {
  prefillTokens = 0;
  prefillMs = 0;
  decodeSteps = 0;
  decodeMs = 0;
  rankTokens = 0;
  rankMs = 0;
  /** Generations finished, and their decode steps: the mean predicts unfinished items. */
  generations = 0;
  generationSteps = 0;
  /** The first generation batch and the first candidate batch, as recorded. */
  private firstGeneration: { prefillTokens: number; prefillMs: number; decodeSteps: number; decodeMs: number } | null = null;
  private firstRank: { tokens: number; ms: number } | null = null;

  /**
   * A generation of `generations` sequences together (1: one item): their prompt tokens and prefill
   * time, and their decode tokens (each sequence's after its first, summed) and decode time.
   */
  recordGeneration(promptTokens: number, prefillMs: number, decodeSteps: number, decodeMs: number, generations = 1): void {
    this.firstGeneration ??= { prefillTokens: promptTokens, prefillMs, decodeSteps, decodeMs };
    this.prefillTokens += promptTokens;
    this.prefillMs += prefillMs;
    this.decodeSteps += decodeSteps;
    this.decodeMs += decodeMs;
    this.generations += generations;
    this.generationSteps += decodeSteps;
  }

  recordRank(tokens: number, ms: number): void {
    this.firstRank ??= { tokens, ms };
    this.rankTokens += tokens;
    this.rankMs += ms;
  }

  get prefillTokensPerSecond(): number | null {
    const first = this.firstGeneration;
    if (first && this.prefillMs - first.prefillMs > 0) return ((this.prefillTokens - first.prefillTokens) / (this.prefillMs - first.prefillMs)) * 1000;
    return this.prefillMs > 0 ? (this.prefillTokens / this.prefillMs) * 1000 : null;
  }

  get decodeMsPerToken(): number | null {
    const first = this.firstGeneration;
    if (first && this.decodeSteps - first.decodeSteps > 0) return (this.decodeMs - first.decodeMs) / (this.decodeSteps - first.decodeSteps);
    return this.decodeSteps > 0 ? this.decodeMs / this.decodeSteps : null;
  }

  get rankTokensPerSecond(): number | null {
    const first = this.firstRank;
    if (first && this.rankMs - first.ms > 0) return ((this.rankTokens - first.tokens) / (this.rankMs - first.ms)) * 1000;
    return this.rankMs > 0 ? (this.rankTokens / this.rankMs) * 1000 : null;
  }

  /** Mean decode steps per finished generation, or null before the first. */
  get meanDecodeSteps(): number | null {
    return this.generations > 0 ? this.generationSteps / this.generations : null;
  }

  /**
   * Time for a workload at the rates seen so far, or null while a needed rate is unknown. Prefill and
   * candidate batches are both full-sequence forwards, so each stands in for the other until measured.
   */
  estimateMs(work: Workload, expectedStepsPerItem: number): number | null {
    const prefill = this.prefillTokensPerSecond ?? this.rankTokensPerSecond;
    const rank = this.rankTokensPerSecond ?? this.prefillTokensPerSecond;
    const steps = work.decodeSteps ?? work.items * (this.meanDecodeSteps ?? expectedStepsPerItem);
    if ((work.promptTokens > 0 && prefill === null) || (work.rankTokens > 0 && rank === null)) return null;
    const decode = this.decodeMsPerToken ?? (this.generations > 0 ? 0 : null);
    if (steps > 0 && decode === null) return null;
    return (work.promptTokens / (prefill ?? 1) + work.rankTokens / (rank ?? 1)) * 1000 + steps * (decode ?? 0);
  }

  rates(): Partial<ThroughputRates> {
    const out: Partial<ThroughputRates> = {};
    if (this.prefillTokensPerSecond !== null) out.prefillTokensPerSecond = this.prefillTokensPerSecond;
    if (this.decodeMsPerToken !== null) out.decodeMsPerToken = this.decodeMsPerToken;
    if (this.rankTokensPerSecond !== null) out.rankTokensPerSecond = this.rankTokensPerSecond;
    return out;
  }
}
