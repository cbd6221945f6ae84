import { SeededRandom } from '../data/random';
import { viewTensor } from '../gpu/tensor';
import { GEMV_ROWS } from '../kernels/matmul';
import { gatherLogProbs } from '../kernels/softmax';
import { KvCache, type Phi2Model, Phi2Workspace } from '../model/phi2/forward';
import type { Generator } from '../model/phi2/generate';
import type { LoraState } from '../model/phi2/lora-state';
import type { Phi2Dims } from '../model/phi2/params';
import type { PhiTokenizer } from '../tokenizer';
import { modelInput, toItemResult, type EvalItemResult, type EvalSettings } from './results';
import { firstBracketedList, isListTarget, stripAnswerPrefixes } from './scoring';
import type { EvalItem } from './types';

/**
 * Runs evaluation items on the loaded model (optionally with a LoRA adapter) on the GPU:
 *
 *   1. prepare: every item's model input (the paper's `Instruct: {prompt}\nOutput:` wrapper for the
 *      bundled suites; a saved dataset's rows go as they are, their template is already in them) is
 *      tokenised once, lengths are checked against the model's positions before any GPU work starts;
 *   2. in batches of consecutive items: greedy generation of up to maxNewTokens (the paper: 50) for all
 *      of them together (Generator.generateBatch), each scored with the README's rule (scoring.ts);
 *      then per item, where it has candidate labels, their log-likelihoods after the prompt
 *      (CandidateScorer), which rank classification uses. Results are reported in item order.
 *
 * Decode reads all the weights once per step, so prompts generated together (left-padded to the
 * longest, one token per sequence per step) cost about what one costs: a batch of B decodes nearly B
 * times as many tokens per second. A batch holds up to generationBatch items (default
 * DEFAULT_GENERATION_BATCH), fewer where their KV cache (f32: layers x 2 x hidden x 4 bytes per position
 * and sequence, 655 KB for Phi-2) would pass GENERATION_CACHE_BYTES; each sequence ends on its own, and
 * verdicts are those of generating item by item (generationBatch 1). Candidates share their prompt:
 * CandidateScorer runs the prompt once into a KV cache and each candidate continues from it, rather
 * than a right-padded batch of (prompt + candidate) rows (Generator.scoreCandidates), which repeats the
 * prompt per candidate and projects every position onto the vocabulary. With labels of 1-3 tokens after
 * a prompt of hundreds, that is about B times less work. "Stop when answered" ends a generation as soon
 * as the part the scoring rule reads is complete (a first line, or a first bracketed list): verdicts are
 * identical, decoding is much shorter.
 *
 * ## How long the paper replication takes on an RTX 4090-class GPU (estimate, method)
 * Workload, measured with Phi-2's tokenizer on the 730 prompts wrapped as the paper sent them:
 * 241,780 prompt tokens (mean 331, longest 1,138) and at most 730 x 50 = 36,500 generated tokens.
 * - Decode is bound by reading the weights once per step: ~3 GB of int8 weights at ~1 TB/s is ~3 ms per
 *   step (DESIGN.md), plus ~0.3 ms to read the sampled ids back: 3.3 ms/token one sequence at a time.
 *   Batches of 4 (paper prompts of ~380 positions fit 4 in the cache budget) divide that by up to 4, less
 *   the steps where a batch waits for its longest generation; RTX_4090_CLASS keeps the batch-1 figure, an
 *   upper bound, and the rates measured on this GPU replace it.
 * - Prefill is bound by arithmetic: ~5.0 GFLOP per token (2 x 2.5e9 parameters in the blocks; attention
 *   adds ~4*L*T*C = 0.1 GFLOP at T = 330; the lm_head runs for the last position only). Our f32 WGSL tiled
 *   matmul reaches 28-30 TFLOP/s on an H100 (DESIGN.md); assuming ~20 TFLOP/s effective on a 4090 with
 *   int8 dequantisation in the inner loop gives ~0.25 ms/token, ~4,000 prompt tokens/s.
 * - Generation scoring, as the paper: 241,780 / 4,000 = 60 s of prefill + 36,500 x 3.3 ms = 120 s of
 *   decode: about 3 minutes at most (every generation running to 50 tokens). With "stop when answered",
 *   classification answers end at their first newline (~5 tokens) and lists at their first "]" (~25):
 *   ~400 x 5 + 330 x 25 = 10,250 tokens, 34 s of decode: about 1.6 minutes.
 * - Rank classification runs the 400 classification prompts (~207,000 tokens) once more into a cache,
 *   then 1-3 tokens per candidate: about 207,000 / 4,000 = 52 s more (when not sharing the generation's
 *   prefill).
 * RTX_4090_CLASS holds these rates; estimateWorkMs applies them (or the rates measured on this GPU) to
 * any run's workload.
 */

/** What the runner needs of a loaded model (Session's LoadedModel provides it; tests build it directly). */
export interface EvalModel {
  model: Phi2Model;
  tokenizer: Pick<PhiTokenizer, 'encode' | 'decode'>;
  generator: Pick<Generator, 'generateBatch'>;
}

export interface RunnerSettings extends EvalSettings {
  /** Log-likelihoods of the candidate labels for items that have them (always with scoring 'rank'). */
  rankCandidates: boolean;
  /** End a generation once the part the scoring rule reads is complete; verdicts do not change. */
  stopWhenAnswered: boolean;
  /**
   * Items generated together at most (fewer where the KV cache would pass GENERATION_CACHE_BYTES);
   * 1 generates item by item. Absent: DEFAULT_GENERATION_BATCH. Verdicts do not change.
   */
  generationBatch?: number;
}

export const MAX_NEW_TOKENS_LIMIT = 512;
export const GENERATION_BATCH_LIMIT = 64;
/**
 * Items per generation batch by default: the decode matmuls' GEMV path reads each weight once for up
 * to GEMV_ROWS (4) rows. More rows go to the tiled GEMM, whose 64-row tiles do 8 to 13 times the useful
 * arithmetic at 5 to 8 rows (Phi-2: ~0.3 TFLOP per step, several times the 4-row step's weight read),
 * so with today's kernels 4 decodes the most tokens per second.
 */
export const DEFAULT_GENERATION_BATCH = GEMV_ROWS;
/** KV cache a generation batch may use (f32 keys and values of every layer): 1 GiB, 1,638 Phi-2 positions. */
export const GENERATION_CACHE_BYTES = 2 ** 30;

export interface RunItemResult extends EvalItemResult {
  /** How this item's verdict was reached ('rank' only for items with candidate labels). */
  scoredBy: 'generation' | 'rank';
  promptTokens: number;
  generatedTokens: number;
  /** Why generation ended; 'answered' is stopWhenAnswered; null when nothing was generated. */
  stopped: 'stop-token' | 'max-tokens' | 'context-full' | 'answered' | null;
}

export interface PreparedItem {
  item: EvalItem;
  /** The exact text the model is given. */
  input: string;
  promptIds: number[];
  /** Candidate continuations (label texts as they follow the input) and their tokens, for rank scoring. */
  candidates: { texts: string[]; ids: number[][] } | null;
  scoredBy: 'generation' | 'rank';
  /** New tokens this item may generate (maxNewTokens, or fewer near the end of the context). */
  newTokenBudget: number;
}

export class EvalSetupError extends Error {
  override name = 'EvalSetupError';
}

/** Thrown when a run is stopped before it started generating (prepare); runs stopped later return. */
export class EvalCancelledError extends Error {
  override name = 'AbortError';
  constructor() {
    super('The evaluation was cancelled.');
  }
}

export function checkRunnerSettings(s: RunnerSettings): void {
  if (s.decoding !== 'greedy') throw new EvalSetupError(`decoding "${String(s.decoding)}" is not supported; evaluations decode greedily`);
  if (s.wrapper !== 'paper' && s.wrapper !== 'none') throw new EvalSetupError(`unknown prompt wrapper "${String(s.wrapper)}"`);
  if (s.scoring !== 'generation' && s.scoring !== 'rank') throw new EvalSetupError(`unknown scoring "${String(s.scoring)}"`);
  if (!Number.isInteger(s.maxNewTokens) || s.maxNewTokens < 0 || s.maxNewTokens > MAX_NEW_TOKENS_LIMIT) {
    throw new EvalSetupError(`max new tokens must be an integer from 0 to ${MAX_NEW_TOKENS_LIMIT}, got ${s.maxNewTokens}`);
  }
  if (s.scoring === 'rank' && !s.rankCandidates) throw new EvalSetupError('rank scoring needs the candidate log-likelihoods (rankCandidates)');
  const batch = s.generationBatch;
  if (batch !== undefined && (!Number.isInteger(batch) || batch < 1 || batch > GENERATION_BATCH_LIMIT)) {
    throw new EvalSetupError(`the generation batch must be an integer from 1 to ${GENERATION_BATCH_LIMIT}, got ${batch}`);
  }
}

/**
 * How runPrepared groups items, as [first, end) ranges in order covering every item: runs of
 * consecutive items that generate, each as long as `maxBatch` allows and as their KV cache fits
 * GENERATION_CACHE_BYTES and the model's positions (left padding puts every sequence at the longest
 * prompt's length: rows up to longest prompt + largest budget - 1); an item that does not generate
 * is a range of its own.
 */
export function generationBatches(prepared: readonly PreparedItem[], dims: Phi2Dims, maxBatch: number): Array<[number, number]> {
  const bytesPerPosition = dims.layers * 2 * dims.hidden * 4;
  const ranges: Array<[number, number]> = [];
  let first = 0;
  let longest = 0;
  let budget = 0;
  for (let i = 0; i < prepared.length; i++) {
    const p = prepared[i];
    const open = i > first && prepared[first].newTokenBudget > 0;
    if (open && p.newTokenBudget > 0) {
      const size = i - first + 1;
      const l = Math.max(longest, p.promptIds.length);
      const b = Math.max(budget, p.newTokenBudget);
      const rows = l + b - 1;
      if (size <= maxBatch && size * rows * bytesPerPosition <= GENERATION_CACHE_BYTES && rows <= dims.maxPositions) {
        longest = l;
        budget = b;
        continue;
      }
    }
    if (i > first) ranges.push([first, i]);
    first = i;
    longest = p.promptIds.length;
    budget = p.newTokenBudget;
  }
  if (prepared.length > first) ranges.push([first, prepared.length]);
  return ranges;
}

/** The input for an item: saved datasets already carry their template, so only bundled suites are wrapped. */
export function itemInput(item: EvalItem, wrapper: EvalSettings['wrapper']): string {
  return modelInput(item, item.suite === 'user' ? 'none' : wrapper);
}

/**
 * The text a candidate label continues the input with: after a space or newline the label itself,
 * otherwise a space and the label (" Hate" after "Output:"), as the model would write it.
 */
export function candidateText(input: string, label: string): string {
  return /\s$/.test(input) ? label : ` ${label}`;
}

/**
 * True once the generation holds everything the scoring rule reads, so more tokens cannot change the
 * verdict: for list targets a first complete bracketed list, otherwise a newline after the stripped
 * answer prefixes (the first line is then final; prefixes cannot span a newline).
 */
export function answerComplete(generation: string, target: string): boolean {
  const text = stripAnswerPrefixes(generation);
  return isListTarget(target) ? firstBracketedList(text) !== null : text.includes('\n');
}

const YIELD_EVERY = 32;
const nextTask = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/**
 * Tokenises and checks every item before the GPU starts: a prompt that does not fit the model is an
 * error naming the item, not a failure halfway through a long run. Yields to the event loop now and
 * then so a cancel request is heard.
 */
export async function prepareItems(
  model: EvalModel,
  items: readonly EvalItem[],
  settings: RunnerSettings,
  options: { signal?: AbortSignal; onProgress?: (done: number, total: number) => void } = {},
): Promise<PreparedItem[]> {
  checkRunnerSettings(settings);
  if (items.length === 0) throw new EvalSetupError('there are no items to evaluate: choose at least one dataset and format');
  const seen = new Set<string>();
  const prepared: PreparedItem[] = [];
  for (const [k, item] of items.entries()) {
    if (options.signal?.aborted) throw new EvalCancelledError();
    if (seen.has(item.id)) throw new EvalSetupError(`item id "${item.id}" appears twice`);
    seen.add(item.id);
    const input = itemInput(item, settings.wrapper);
    const promptIds = model.tokenizer.encode(input);
    if (promptIds.length === 0) throw new EvalSetupError(`item ${item.id} has an empty prompt`);
    if (promptIds.length >= model.model.dims.maxPositions) {
      throw new EvalSetupError(
        `item ${item.id} has ${promptIds.length} prompt tokens; the model takes at most ${model.model.dims.maxPositions - 1} before generating. Use fewer or shorter exemplars.`,
      );
    }
    const rankable = settings.rankCandidates && item.labels !== undefined && item.labels.length >= 2;
    const scoredBy = settings.scoring === 'rank' && rankable ? 'rank' : 'generation';
    if (scoredBy === 'generation' && settings.maxNewTokens === 0) {
      throw new EvalSetupError(
        `item ${item.id} has no candidate labels, so it can only be scored on a generation, but max new tokens is 0. Allow some new tokens or leave such items out.`,
      );
    }
    let candidates: PreparedItem['candidates'] = null;
    if (rankable) {
      if (!item.labels!.includes(item.target)) throw new EvalSetupError(`item ${item.id}: the target "${item.target}" is not one of its labels (${item.labels!.join(', ')})`);
      const texts = item.labels!.map((label) => candidateText(input, label));
      const ids = texts.map((t) => model.tokenizer.encode(t));
      const longest = Math.max(...ids.map((c) => c.length));
      if (ids.some((c) => c.length === 0)) throw new EvalSetupError(`item ${item.id} has an empty candidate label`);
      if (promptIds.length + longest > model.model.dims.maxPositions) {
        throw new EvalSetupError(`item ${item.id}: prompt and longest candidate take ${promptIds.length + longest} positions; the model has ${model.model.dims.maxPositions}`);
      }
      candidates = { texts, ids };
    }
    prepared.push({ item, input, promptIds, candidates, scoredBy, newTokenBudget: Math.min(settings.maxNewTokens, model.model.dims.maxPositions - promptIds.length) });
    if ((k + 1) % YIELD_EVERY === 0) {
      options.onProgress?.(k + 1, items.length);
      await nextTask();
    }
  }
  options.onProgress?.(items.length, items.length);
  return prepared;
}

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
 * items), so later runs start with a good estimate.
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

  /**
   * A generation of `generations` sequences together (1: one item): their prompt tokens and prefill
   * time, and their decode tokens (each sequence's after its first, summed) and decode time.
   */
  recordGeneration(promptTokens: number, prefillMs: number, decodeSteps: number, decodeMs: number, generations = 1): void {
    this.prefillTokens += promptTokens;
    this.prefillMs += prefillMs;
    this.decodeSteps += decodeSteps;
    this.decodeMs += decodeMs;
    this.generations += generations;
    this.generationSteps += decodeSteps;
  }

  recordRank(tokens: number, ms: number): void {
    this.rankTokens += tokens;
    this.rankMs += ms;
  }

  get prefillTokensPerSecond(): number | null {
    return this.prefillMs > 0 ? (this.prefillTokens / this.prefillMs) * 1000 : null;
  }

  get decodeMsPerToken(): number | null {
    return this.decodeSteps > 0 ? this.decodeMs / this.decodeSteps : null;
  }

  get rankTokensPerSecond(): number | null {
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

export interface RunProgress {
  done: number;
  total: number;
  /** Correct so far, by the run's scoring. */
  correct: number;
  /** The item just finished. */
  itemId: string | null;
  elapsedMs: number;
  /** Time left for this run and any work queued after it, or null until rates are known. */
  etaMs: number | null;
  /** New tokens per second while decoding, and prompt tokens per second in prefill (measured so far). */
  decodeTokensPerSecond: number | null;
  prefillTokensPerSecond: number | null;
  generatedTokens: number;
}

export interface RunOptions {
  adapter?: LoraState | null;
  signal?: AbortSignal;
  /** Monotonic milliseconds (the Platform's now). */
  now: () => number;
  meter?: ThroughputMeter;
  /** Work queued after this run (later models of the same request), counted in the time left. */
  laterWork?: Workload;
  onProgress?: (progress: RunProgress) => void;
  onItem?: (result: RunItemResult, index: number) => void;
}

export interface RunOutcome {
  results: RunItemResult[];
  /** True when stopped early: `results` holds the items finished before. */
  cancelled: boolean;
  durationMs: number;
  rates: Partial<ThroughputRates>;
  promptTokens: number;
  generatedTokens: number;
}

/**
 * Runs prepared items, generating in batches (generationBatches) and reporting each item in order.
 * Cancelling (options.signal) stops at the next token or before the next candidate scoring: a batch
 * whose generation is under way is dropped; the items finished are returned with cancelled = true.
 */
export async function runPrepared(model: EvalModel, prepared: readonly PreparedItem[], settings: RunnerSettings, options: RunOptions): Promise<RunOutcome> {
  checkRunnerSettings(settings);
  const { now, signal } = options;
  const meter = options.meter ?? new ThroughputMeter();
  const adapter = options.adapter ?? null;
  const start = now();
  const results: RunItemResult[] = [];
  let correct = 0;
  let promptTokens = 0;
  let generatedTokens = 0;
  // Work left after item i, with the measured mean of decode steps rather than each item's upper bound.
  const perItem = prepared.map((p) => ({ ...workloadOf([p]), decodeSteps: null }));
  const after: Workload[] = new Array(prepared.length + 1);
  after[prepared.length] = { ...(options.laterWork ?? { items: 0, promptTokens: 0, rankTokens: 0 }), decodeSteps: null };
  for (let i = prepared.length - 1; i >= 0; i--) after[i] = addWorkloads(perItem[i], after[i + 1]);
  const expectedSteps = Math.max(0, settings.maxNewTokens - 1);

  const report = (itemId: string | null) => {
    if (!options.onProgress) return;
    const rest = after[results.length];
    const decodeMs = meter.decodeMsPerToken;
    options.onProgress({
      done: results.length,
      total: prepared.length,
      correct,
      itemId,
      elapsedMs: now() - start,
      etaMs: rest.items === 0 ? 0 : meter.estimateMs(rest, expectedSteps),
      decodeTokensPerSecond: decodeMs ? 1000 / decodeMs : null,
      prefillTokensPerSecond: meter.prefillTokensPerSecond,
      generatedTokens,
    });
  };
  report(null);

  const scorer = prepared.some((p) => p.candidates) ? new CandidateScorer(model.model) : null;
  const batches = generationBatches(prepared, model.model.dims, settings.generationBatch ?? DEFAULT_GENERATION_BATCH);
  try {
    run: for (const [first, end] of batches) {
      if (signal?.aborted) break;
      const group = prepared.slice(first, end);
      const tg = now();
      let generations: ItemGeneration[] = group.map(() => ({ tokens: [], stopped: null }));
      if (group[0].newTokenBudget > 0) {
        const outcome = await generateGroup(model, group, settings, adapter, signal, now, meter);
        if (outcome === null) break; // cancelled mid-generation: the batch's items are dropped
        generations = outcome;
        for (const [k, p] of group.entries()) {
          promptTokens += p.promptIds.length;
          generatedTokens += generations[k].tokens.length;
        }
      }
      // Each item's time: its share of the batch's generation, and its own candidate scoring.
      const generationShare = (now() - tg) / group.length;
      for (const [k, p] of group.entries()) {
        const i = first + k;
        const t0 = now();
        const { tokens, stopped } = generations[k];
        let logLikelihoods: number[] | undefined;
        if (p.candidates) {
          if (signal?.aborted) break run;
          logLikelihoods = await scorer!.score(p.promptIds, p.candidates.ids, adapter);
          meter.recordRank(perItem[i].rankTokens, now() - t0);
        }
        const generation = tokens.length ? model.tokenizer.decode(tokens) : '';
        const base = toItemResult(p.item, generation, p.scoredBy, { logLikelihoods, ms: generationShare + now() - t0 });
        const result: RunItemResult = { ...base, scoredBy: p.scoredBy, promptTokens: p.promptIds.length, generatedTokens: tokens.length, stopped };
        results.push(result);
        if (result.verdict.correct) correct++;
        options.onItem?.(result, i);
        report(p.item.id);
      }
    }
  } finally {
    scorer?.destroy();
  }
  return { results, cancelled: results.length < prepared.length, durationMs: now() - start, rates: meter.rates(), promptTokens, generatedTokens };
}

interface ItemGeneration {
  tokens: number[];
  stopped: RunItemResult['stopped'];
}

/**
 * Greedy generation of a batch of items together, with throughput bookkeeping; null when the run was
 * cancelled during it. With stopWhenAnswered each sequence ends as soon as its answer is complete.
 */
async function generateGroup(
  model: EvalModel,
  group: readonly PreparedItem[],
  settings: RunnerSettings,
  adapter: LoraState | null,
  signal: AbortSignal | undefined,
  now: () => number,
  meter: ThroughputMeter,
): Promise<ItemGeneration[] | null> {
  const answered = group.map(() => false);
  const sofar: number[][] = group.map(() => []);
  let firstTokenAt: number | null = null;
  const t0 = now();
  const gens = await model.generator.generateBatch(
    group.map((p) => p.promptIds),
    {
      maxNewTokens: group.map((p) => p.newTokenBudget),
      signal,
      adapter,
      onToken: (sequence, token) => {
        firstTokenAt ??= now();
        sofar[sequence].push(token);
        if (settings.stopWhenAnswered && answerComplete(model.tokenizer.decode(sofar[sequence]), group[sequence].item.target)) {
          answered[sequence] = true;
          return true;
        }
      },
    },
  );
  const end = now();
  if (gens.some((g, k) => g.stopped === 'cancelled' && !answered[k])) return null;
  // Forward passes each sequence took part in: one per returned token, plus the one that chose a stop
  // token. Decode counts every sequence's tokens after its first, so its rate is tokens per second
  // over the batch, and the mean per item predicts the items left.
  const decodeTokens = gens.reduce((sum, g) => sum + Math.max(0, g.tokens.length + (g.stopped === 'stop-token' ? 1 : 0) - 1), 0);
  const prefillEnd = firstTokenAt ?? end;
  const promptTokens = group.reduce((sum, p) => sum + p.promptIds.length, 0);
  meter.recordGeneration(promptTokens, prefillEnd - t0, decodeTokens, firstTokenAt === null ? 0 : end - firstTokenAt, group.length);
  return gens.map((g, k) => ({ tokens: g.tokens, stopped: answered[k] ? 'answered' : (g.stopped as 'stop-token' | 'max-tokens' | 'context-full') }));
}

/**
 * Log-likelihoods of candidate continuations sharing one prompt: sum over each candidate's tokens of
 * log p(token | prompt and the candidate's tokens before it). The prompt but its last token runs once
 * into a KV cache; each candidate then runs [last prompt token, its tokens but the last] from that
 * cache (rewound to the prompt's end: later writes overwrite the earlier candidate's positions), with
 * logits only for those rows. Buffers are kept across items and grown when an item needs more.
 */
export class CandidateScorer {
  private ws: Phi2Workspace | null = null;
  private cache: KvCache | null = null;

  constructor(private readonly model: Phi2Model) {}

  async score(prompt: readonly number[], candidates: ReadonlyArray<readonly number[]>, adapter: LoraState | null = null): Promise<number[]> {
    const { gpu, dims } = this.model;
    const P = prompt.length;
    if (P === 0) throw new Error('CandidateScorer: the prompt is empty');
    if (candidates.length === 0) throw new Error('CandidateScorer: no candidates to score');
    if (candidates.some((c) => c.length === 0)) throw new Error('CandidateScorer: a candidate has no tokens');
    const longest = Math.max(...candidates.map((c) => c.length));
    if (P + longest > dims.maxPositions) throw new Error(`CandidateScorer: ${P + longest} positions exceed the model's ${dims.maxPositions}`);
    const { ws, cache } = this.buffers(Math.max(P - 1, longest), P - 1 + longest);
    // Each candidate's rows start at a storage-offset boundary, so its slice binds as a view.
    const align = gpu.device.limits.minStorageBufferOffsetAlignment / 4;
    const offsets: number[] = [];
    let total = 0;
    for (const c of candidates) {
      offsets.push(total);
      total += Math.ceil(c.length / align) * align;
    }
    const targets = new Uint32Array(total);
    candidates.forEach((c, b) => targets.set(c, offsets[b]));
    const targetTensor = gpu.upload('candidate_targets', [total], targets, 'u32');
    const logProbs = gpu.tensor('candidate_logprobs', [total]);
    try {
      cache.reset();
      if (P > 1) {
        this.model.forward(ws, cache, { ids: Uint32Array.from(prompt.slice(0, P - 1)), batch: 1, seq: P - 1, logits: 'none', adapter });
      }
      candidates.forEach((c, b) => {
        cache.length = P - 1;
        const n = c.length;
        const ids = Uint32Array.of(prompt[P - 1], ...c.slice(0, n - 1));
        const logits = this.model.forward(ws, cache, { ids, batch: 1, seq: n, logits: 'all', adapter })!;
        const at = offsets[b] * 4;
        gatherLogProbs(gpu, viewTensor(logProbs, [n], 'candidate_logprobs', at), logits, viewTensor(targetTensor, [n], 'candidate_targets', at), n, dims.vocab);
      });
      const lp = await gpu.readF32(logProbs);
      return candidates.map((c, b) => {
        let sum = 0;
        for (let j = 0; j < c.length; j++) sum += lp[offsets[b] + j];
        return sum;
      });
    } finally {
      targetTensor.buffer.destroy();
      logProbs.buffer.destroy();
    }
  }

  private buffers(tokens: number, positions: number): { ws: Phi2Workspace; cache: KvCache } {
    const { gpu, dims } = this.model;
    if (!this.ws || this.ws.maxTokens < tokens) {
      this.ws?.destroy();
      this.ws = new Phi2Workspace(gpu, dims, Math.max(tokens, 64));
    }
    if (!this.cache || this.cache.maxSeq < positions) {
      this.cache?.destroy();
      this.cache = new KvCache(gpu, dims, 1, Math.min(dims.maxPositions, Math.max(positions, 256)));
    }
    return { ws: this.ws, cache: this.cache };
  }

  destroy(): void {
    this.ws?.destroy();
    this.cache?.destroy();
    this.ws = null;
    this.cache = null;
  }
}

/** prepareItems then runPrepared: one model, one list of items. */
export async function evaluateItems(
  model: EvalModel,
  items: readonly EvalItem[],
  settings: RunnerSettings,
  options: RunOptions,
): Promise<RunOutcome & { prepared: PreparedItem[] }> {
  const prepared = await prepareItems(model, items, settings, { signal: options.signal });
  return { ...(await runPrepared(model, prepared, settings, options)), prepared };
}

/** Accuracy of results under rank classification (items with log-likelihoods only): for side-by-side views. */
export function rankAccuracy(results: readonly EvalItemResult[]): { correct: number; total: number } {
  let correct = 0;
  let total = 0;
  for (const r of results) {
    if (!r.labels || !r.logLikelihoods) continue;
    total++;
    let best = 0;
    r.logLikelihoods.forEach((ll, k) => {
      if (ll > r.logLikelihoods![best]) best = k;
    });
    if (r.labels[best] === r.target) correct++;
  }
  return { correct, total };
}

// ---------------------------------------------------------------------------------------------------
// Saved datasets as evaluation items

/** A saved dataset row (the Data page keeps {prompt, completion} pairs whose concatenation is the text). */
export interface PromptCompletionRow {
  prompt: string;
  completion: string;
}

/** At most this many distinct completions make a dataset a classification set (its labels the candidates). */
export const MAX_DATASET_LABELS = 20;

/**
 * Candidate labels read off a few-shot prompt: when its last line is "<Prefix>:" (a symbol-tuning prompt,
 * "Answer:"), the values of the earlier "<Prefix>: value" lines, in order of first appearance.
 */
export function promptAnswerLabels(prompt: string): string[] {
  const lines = prompt.split('\n');
  const last = lines[lines.length - 1].trimEnd();
  const m = /^([^:\n]{1,40}):$/.exec(last);
  if (!m) return [];
  const lead = `${m[1]}: `;
  const labels: string[] = [];
  for (const line of lines.slice(0, -1)) {
    if (!line.startsWith(lead)) continue;
    const value = line.slice(lead.length).trim();
    if (value && !labels.includes(value)) labels.push(value);
  }
  return labels;
}

/**
 * A saved dataset as evaluation items: target = the completion, trimmed. Candidate labels (for rank
 * classification): the prompt's own exemplar answers where they include the target (symbol-tuning
 * prompts carry their symbols), else the dataset's distinct completions when there are 2..20 of them.
 * `count` rows are drawn with the seed (all of them if there are fewer), kept in dataset order.
 */
export function userDatasetItems(
  dataset: { name: string; kind: string },
  rows: readonly PromptCompletionRow[],
  options: { seed: number; count: number },
): EvalItem[] {
  if (!Number.isInteger(options.count) || options.count < 1) throw new EvalSetupError(`item count must be a positive integer, got ${options.count}`);
  const usable = rows.map((r, index) => ({ ...r, index, target: r.completion.trim() })).filter((r) => r.target !== '' && r.prompt !== '');
  if (usable.length === 0) throw new EvalSetupError(`"${dataset.name}" has no rows with both a prompt and a completion to compare with`);
  const distinct = [...new Set(usable.map((r) => r.target))];
  const datasetLabels = distinct.length >= 2 && distinct.length <= MAX_DATASET_LABELS ? distinct : null;
  const picked =
    options.count >= usable.length
      ? usable
      : SeededRandom.from(options.seed, 'user-dataset', dataset.name)
          .sampleIndices(usable.length, options.count)
          .sort((a, b) => a - b)
          .map((k) => usable[k]);
  return picked.map((r) => {
    const item: EvalItem = { id: `user/${dataset.name}/${r.index}`, suite: 'user', dataset: dataset.name, format: dataset.kind, prompt: r.prompt, target: r.target };
    const own = promptAnswerLabels(r.prompt);
    if (own.length >= 2 && own.includes(r.target)) item.labels = own;
    else if (datasetLabels) item.labels = datasetLabels;
    return item;
  });
}

// ---------------------------------------------------------------------------------------------------
// One GPU task at a time per model

const holders = new WeakMap<object, string>();

export class ModelBusyError extends Error {
  override name = 'ModelBusyError';
}

/**
 * Runs `task` with exclusive use of a Generator (its workspace and KV cache are shared by every call,
 * so two generations must not interleave). A second caller is refused at once with what holds it,
 * rather than queued behind a long evaluation without a word.
 */
export async function withModel<T>(generator: object, what: string, task: () => Promise<T>): Promise<T> {
  const holder = holders.get(generator);
  if (holder !== undefined) throw new ModelBusyError(`The model is busy with ${holder}. Wait for it to finish or cancel it, then try again.`);
  holders.set(generator, what);
  try {
    return await task();
  } finally {
    holders.delete(generator);
  }
}

export function modelBusyWith(generator: object): string | null {
  return holders.get(generator) ?? null;
}
