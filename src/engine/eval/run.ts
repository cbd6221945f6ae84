import type { LoraState } from '../model/phi2/lora-state';
import type { ModelDims } from '../weights/config';
import { CandidateScorer } from './candidates';
import {
  checkRunnerSettings,
  DEFAULT_GENERATION_BATCH,
  EvalSetupError,
  type EvalModel,
  GENERATION_CACHE_BYTES,
  prepareItems,
  type PreparedItem,
  type RunnerSettings,
} from './prepare';
import { answerContext, toItemResult, type EvalItemResult } from './results';
import { verdictsSettled } from './scoring';
import { addWorkloads, ThroughputMeter, type ThroughputRates, type Workload, workloadOf } from './throughput';
import type { EvalItem } from './types';

/**
 * Step 2 of an evaluation: prepared items (prepare.ts) run on the loaded model, optionally with a LoRA
 * adapter, in batches of consecutive items: greedy generation of up to maxNewTokens (the paper: 50) for
 * all of them together (Generator.generateBatch), each scored with both automatic verdicts (scoring.ts);
 * then per item, where it has candidate labels, their log-likelihoods after the prompt (candidates.ts),
 * which rank classification uses. Results are reported in item order, a whole batch at a time.
 *
 * Decode reads all the weights once per step, so prompts generated together (left-padded to the
 * longest, one token per sequence per step) cost about what one costs: a batch of B decodes nearly B
 * times as many tokens per second. A batch holds up to generationBatch items (default
 * DEFAULT_GENERATION_BATCH), fewer where their KV cache (f32: layers x 2 x hidden x 4 bytes per position
 * and sequence, 655 KB for Phi-2) would pass GENERATION_CACHE_BYTES; each sequence ends on its own, and
 * verdicts are those of generating item by item (generationBatch 1). "Stop when answered" ends a
 * generation as soon as neither verdict can change: verdicts are identical, decoding is much shorter.
 *
 * The batches are planned over all the items, so a run resumed after k finished items (k at the end of
 * a batch: results are handed over a batch at a time) runs exactly the batches an uninterrupted run
 * would have run next, and ends with the same results.
 */

export interface RunItemResult extends EvalItemResult {
  /** How this item's verdict was reached ('rank' only for items with candidate labels). */
  scoredBy: 'generation' | 'rank';
  promptTokens: number;
  generatedTokens: number;
  /** Why generation ended; 'answered' is stopWhenAnswered; null when nothing was generated. */
  stopped: 'stop-token' | 'max-tokens' | 'context-full' | 'answered' | null;
}

/**
 * How runPrepared groups items, as [first, end) ranges in order covering every item: runs of
 * consecutive items that generate, each as long as `maxBatch` allows and as their KV cache fits
 * GENERATION_CACHE_BYTES and the model's positions (left padding puts every sequence at the longest
 * prompt's length: rows up to longest prompt + largest budget - 1); an item that does not generate
 * is a range of its own.
 */
export function generationBatches(prepared: readonly PreparedItem[], dims: ModelDims, maxBatch: number): Array<[number, number]> {
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

/** True once more tokens cannot change either verdict of this item's generation ("stop when answered"). */
export function answerComplete(generation: string, item: Pick<EvalItem, 'target' | 'prompt' | 'labels'>): boolean {
  return verdictsSettled(generation, item.target, answerContext(item));
}

export interface RunProgress {
  /** Items done, those of a resumed run's earlier session included. */
  done: number;
  total: number;
  /** Correct so far, by the verdict the run counts. */
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
  /**
   * The results of the first items, done before (a resumed run): their batches are skipped. They must
   * end where a batch ends, as the results a run hands over (onBatch) always do.
   */
  done?: readonly EvalItemResult[];
  onProgress?: (progress: RunProgress) => void;
  onItem?: (result: RunItemResult, index: number) => void;
  /**
   * Each finished batch's results, in item order, before the next batch starts; awaited (the worker
   * saves them there). A rejection ends the run as a failure of that batch's first item.
   */
  onBatch?: (results: RunItemResult[], first: number) => Promise<void> | void;
}

/** Where and why a run stopped on an error: the batch's first item, and the message. */
export interface RunFailure {
  itemId: string;
  /** 0-based index of the item in the run. */
  index: number;
  /** Items generated together with it (they failed with it). */
  batchSize: number;
  message: string;
}

export interface RunOutcome {
  /** Results of this session's items (after `done`), in order. */
  results: RunItemResult[];
  /** True when stopped by the signal: `results` holds the items finished before. */
  cancelled: boolean;
  /** Set when an item failed: the run stopped there; `results` holds the items finished before. */
  failure: RunFailure | null;
  durationMs: number;
  rates: Partial<ThroughputRates>;
  promptTokens: number;
  generatedTokens: number;
}

/** "item X (3 of 12, with the 3 generated with it) failed: ..." for error messages. */
export function describeFailure(f: RunFailure, total: number): string {
  const others = f.batchSize > 1 ? `, with the ${f.batchSize - 1} item${f.batchSize > 2 ? 's' : ''} generated with it` : '';
  return `item ${f.itemId} (${f.index + 1} of ${total}${others}) failed: ${f.message}`;
}

/**
 * Runs prepared items, generating in batches (generationBatches) and reporting each item in order.
 * Cancelling (options.signal) stops at the next token or before the next candidate scoring: a batch
 * whose generation is under way is dropped; the items finished are returned with cancelled = true.
 * An error in a batch (the GPU, a save) stops the run there with `failure` naming the item.
 */
export async function runPrepared(model: EvalModel, prepared: readonly PreparedItem[], settings: RunnerSettings, options: RunOptions): Promise<RunOutcome> {
  checkRunnerSettings(settings);
  const { now, signal } = options;
  const meter = options.meter ?? new ThroughputMeter();
  const adapter = options.adapter ?? null;
  const done = options.done ?? [];
  const start = now();
  const results: RunItemResult[] = [];
  let correct = done.filter((r) => r.verdict.correct).length;
  let promptTokens = 0;
  let generatedTokens = 0;
  let failure: RunFailure | null = null;
  // Work left after item i, with the measured mean of decode steps rather than each item's upper bound.
  const perItem = prepared.map((p) => ({ ...workloadOf([p]), decodeSteps: null }));
  const after: Workload[] = new Array(prepared.length + 1);
  after[prepared.length] = { ...(options.laterWork ?? { items: 0, promptTokens: 0, rankTokens: 0 }), decodeSteps: null };
  for (let i = prepared.length - 1; i >= 0; i--) after[i] = addWorkloads(perItem[i], after[i + 1]);
  const expectedSteps = Math.max(0, settings.maxNewTokens - 1);

  const batches = generationBatches(prepared, model.model.dims, settings.generationBatch ?? DEFAULT_GENERATION_BATCH);
  const skip = done.length;
  if (skip > prepared.length || (skip > 0 && skip < prepared.length && !batches.some(([first]) => first === skip))) {
    throw new EvalSetupError(`the ${skip} items done before do not end where a batch of this run ends; the run cannot continue from there`);
  }
  done.forEach((r, k) => {
    if (r.id !== prepared[k].item.id) throw new EvalSetupError(`item ${k + 1} done before is ${r.id}, but this run's item ${k + 1} is ${prepared[k].item.id}`);
  });

  const report = (itemId: string | null) => {
    if (!options.onProgress) return;
    const finished = skip + results.length;
    const rest = after[finished];
    const decodeMs = meter.decodeMsPerToken;
    options.onProgress({
      done: finished,
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

  const scorer = prepared.slice(skip).some((p) => p.candidates) ? new CandidateScorer(model.model) : null;
  try {
    for (const [first, end] of batches) {
      if (first < skip) continue;
      if (signal?.aborted) break;
      const group = prepared.slice(first, end);
      let batch: RunItemResult[] | null;
      try {
        batch = await runBatch({ model, settings, adapter, signal, now, meter }, group, scorer);
        if (batch !== null && batch.length === group.length) await options.onBatch?.(batch, first);
      } catch (err) {
        failure = { itemId: group[0].item.id, index: first, batchSize: group.length, message: (err as Error)?.message || String(err) };
        break;
      }
      if (batch === null || batch.length < group.length) break; // cancelled: the batch is dropped
      for (const [k, result] of batch.entries()) {
        promptTokens += result.stopped !== null ? result.promptTokens : 0; // prefill of the items that generated
        generatedTokens += result.generatedTokens;
        results.push(result);
        if (result.verdict.correct) correct++;
        options.onItem?.(result, first + k);
        report(result.id);
      }
    }
  } finally {
    scorer?.destroy();
  }
  return {
    results,
    cancelled: failure === null && skip + results.length < prepared.length,
    failure,
    durationMs: now() - start,
    rates: meter.rates(),
    promptTokens,
    generatedTokens,
  };
}

/** What every batch of a run shares: the model and adapter, the settings, cancelling, the clock and the meter. */
interface BatchRun {
  model: EvalModel;
  settings: RunnerSettings;
  adapter: LoraState | null;
  signal: AbortSignal | undefined;
  now: () => number;
  meter: ThroughputMeter;
}

/**
 * One batch: its generation (when its items generate), then each item's candidate scores and verdicts.
 * Null, or fewer results than items, when cancelled part way.
 */
async function runBatch(run: BatchRun, group: readonly PreparedItem[], scorer: CandidateScorer | null): Promise<RunItemResult[] | null> {
  const { model, adapter, signal, now, meter } = run;
  const tg = now();
  let generations: ItemGeneration[] = group.map(() => ({ tokens: [], stopped: null }));
  if (group[0].newTokenBudget > 0) {
    const outcome = await generateGroup(run, group);
    if (outcome === null) return null;
    generations = outcome;
  }
  // Each item's time: its share of the batch's generation, and its own candidate scoring.
  const generationShare = (now() - tg) / group.length;
  const out: RunItemResult[] = [];
  for (const [k, p] of group.entries()) {
    const t0 = now();
    const { tokens, stopped } = generations[k];
    let logLikelihoods: number[] | undefined;
    if (p.candidates) {
      if (signal?.aborted) return out;
      logLikelihoods = await scorer!.score(p.promptIds, p.candidates.ids, adapter);
      meter.recordRank(p.promptIds.length - 1 + p.candidates.ids.reduce((a, c) => a + c.length, 0), now() - t0);
    }
    const generation = tokens.length ? model.tokenizer.decode(tokens) : '';
    const base = toItemResult(p.item, generation, p.scoredBy, { logLikelihoods, ms: generationShare + now() - t0 });
    out.push({ ...base, scoredBy: p.scoredBy, promptTokens: p.promptIds.length, generatedTokens: tokens.length, stopped });
  }
  return out;
}

interface ItemGeneration {
  tokens: number[];
  stopped: RunItemResult['stopped'];
}

/**
 * Greedy generation of a batch of items together, with throughput bookkeeping; null when the run was
 * cancelled during it. With stopWhenAnswered each sequence ends as soon as its verdicts are settled.
 */
async function generateGroup(run: BatchRun, group: readonly PreparedItem[]): Promise<ItemGeneration[] | null> {
  const { model, settings, adapter, signal, now, meter } = run;
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
        if (settings.stopWhenAnswered && answerComplete(model.tokenizer.decode(sofar[sequence]), group[sequence].item)) {
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
