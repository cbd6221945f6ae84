import { GEMV_ROWS } from '../kernels/matmul';
import type { Phi2Model } from '../model/phi2/forward';
import type { Generator } from '../model/phi2/generate';
import type { PhiTokenizer } from '../tokenizer';
import { modelInput, type EvalSettings } from './results';
import type { EvalItem } from './types';

/**
 * Step 1 of an evaluation: every item's model input (the paper's `Instruct: {prompt}\nOutput:` wrapper
 * for the bundled suites; a saved dataset's rows go as they are, their template is already in them) is
 * tokenised once, and lengths are checked against the model's positions before any GPU work starts.
 * run.ts then generates and scores them.
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
  /** End a generation once neither automatic verdict can change (scoring.ts verdictsSettled). */
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

/**
 * A tokenizer whose encode remembers its answers (up to `maxChars` of text, oldest forgotten first):
 * planning a request tokenises every prompt to count its tokens, and the run that follows, a resumed
 * run or the next model's run then find them ready. Byte-level BPE is a pure function of the text.
 */
export function cachedTokenizer<T extends Pick<PhiTokenizer, 'encode' | 'decode'>>(tokenizer: T, maxChars = 16 * 2 ** 20): Pick<PhiTokenizer, 'encode' | 'decode'> {
  const cache = new Map<string, number[]>();
  let chars = 0;
  return {
    decode: (ids, options) => tokenizer.decode(ids, options),
    encode: (text) => {
      const hit = cache.get(text);
      if (hit) return [...hit];
      const ids = tokenizer.encode(text);
      if (text.length <= maxChars) {
        cache.set(text, [...ids]);
        chars += text.length;
        for (const [key] of cache) {
          if (chars <= maxChars) break;
          cache.delete(key);
          chars -= key.length;
        }
      }
      return ids;
    },
  };
}
