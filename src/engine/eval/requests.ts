import { loadBundledData, type BundledData } from './bundled';
import { type BigBenchDataset, paperItems, samplePaperItems } from './paper';
import { EvalSetupError, type RunnerSettings } from './prepare';
import { type ClassificationFormat, PAPER_GENERATION } from '../data/prompts';
import type { RunStatus, StoredRunSummary } from './results-store';
import { bigBenchItems, classificationItems } from './suites';
import type { EvalItem } from './types';
import { type PromptCompletionRow, userDatasetItems } from './user-datasets';
import type { Workload } from './throughput';

/**
 * What the Evaluate page asks of the engine, and the items a request stands for: the paper's 730
 * prompts (all, or a stratified sample), or suites drawn from the bundled pools, BIG-bench and saved
 * datasets with a seed. Everything is deterministic from the request, which is what lets an
 * interrupted run be resumed on exactly the items it started with.
 */

export type SuiteChoice =
  | {
      kind: 'paper';
      /** Items per dataset and format (and per BIG-bench task), or null for all 730. */
      perGroup: number | null;
    }
  | {
      kind: 'custom';
      /** Bundled classification datasets (teh, teo, subj, climate) x formats. */
      datasets: string[];
      formats: ClassificationFormat[];
      /** Items per dataset and format (the paper: 25). */
      count: number;
      bigbench: BigBenchDataset[];
      /** Items per BIG-bench category (at most the paper's), or null for all of them. */
      bigbenchCount: number | null;
      bigbenchVariant: 'paper' | 'resampled';
      /** An instruction line before BIG-bench demonstrations; empty: none, as the paper's prompts. */
      bigbenchInstruction: string;
      /** Saved datasets (Data page) by id; `count` rows of each. */
      savedDatasets: string[];
    };

export interface EvaluationRequest {
  jobId: string;
  /** The data folder's URL (new URL('data/', location.href).href): the worker's own location differs. */
  dataUrl: string;
  suite: SuiteChoice;
  seed: number;
  /** What to evaluate, in order: null is the base model, a string an adapter loaded beside it. */
  adapters: Array<string | null>;
  settings: RunnerSettings;
}

export interface EvaluationSetup {
  datasets: Array<{ id: string; name: string; instruction: string; labels: string[]; flippedLabels: string[]; rows: number }>;
  formats: ClassificationFormat[];
  bigbench: Array<{ id: BigBenchDataset; prompts: number }>;
  paperPromptCount: number;
  /** The paper's hand-scored counts, flattened: one entry per (suite, dataset, format, model). */
  paper: { models: string[]; cells: Array<{ suite: string; dataset: string; format: string; model: string; correct: number; total: number }> };
  savedDatasets: Array<{ id: string; name: string; kind: string; rowCount: number }>;
  /** Why saved datasets could not be listed, or null. */
  savedDatasetsError: string | null;
}

export interface EvaluationTargets {
  model: { id: string; label: string; weightMode: 'int8' | 'f16' } | null;
  adapters: string[];
  /** The paper's model each loaded adapter stands for (its Hub repository is one of the paper's), or null. */
  paperModels: Record<string, string | null>;
  /** What holds the model (an evaluation, the demo), or null when it is free. */
  busy: string | null;
}

export interface EvaluationPlan {
  itemsPerModel: number;
  models: number;
  /** Items per suite, for the summary line. */
  bySuite: Record<string, number>;
  /** The settings the run will use (the paper replication's are fixed: see effectiveSettings). */
  settings: RunnerSettings;
  /** Null when no model is loaded (tokens are counted with its tokenizer). */
  work: Workload | null;
  /** Milliseconds at most (every generation using its budget), at the rates last measured here, or null. */
  thisGpuMs: number | null;
  /** Milliseconds at most on an RTX 4090-class GPU (throughput.ts explains the rates). */
  rtx4090Ms: number | null;
  /** The first item's exact model input, to show what is sent. */
  sampleInput: string | null;
  /** Milliseconds spent tokenising and checking the items (prepareItems), for the record. */
  prepareMs: number | null;
}

export interface EvaluationProgress {
  jobId: string;
  phase: 'loading' | 'preparing' | 'running' | 'saving';
  /** The model being run (0-based) of `models`, and its label. */
  model: number;
  models: number;
  label: string;
  done: number;
  total: number;
  correct: number;
  /** Items of all models done and planned. */
  overallDone: number;
  overallTotal: number;
  elapsedMs: number;
  /** Time left for the whole request, or null until measured. */
  etaMs: number | null;
  decodeTokensPerSecond: number | null;
  prefillTokensPerSecond: number | null;
  /** The item just finished, briefly, for a live feed. */
  last: { id: string; correct: boolean; extracted: string; target: string } | null;
  /** While loading the model for a resumed run: bytes done and in all. */
  bytes?: { done: number; total: number };
}

export interface EvaluationOutcome {
  groupId: string;
  status: Exclude<RunStatus, 'running'>;
  /** Saved runs, one per model that started. */
  runs: StoredRunSummary[];
  /** Why it failed, when it did: the item, and what went wrong. */
  error: string | null;
  /** True when a failed request can be resumed from where it stopped. */
  resumable: boolean;
}

/** A request that stopped part way (the page was reloaded or closed, or an item failed) and can go on. */
export interface ResumableEvaluation {
  groupId: string;
  /** What was run, for the offer: "paper", "in_context, bigbench"... */
  suite: string;
  modelLabel: string;
  /** The models (null: the base model), as in the request. */
  adapters: Array<string | null>;
  itemsPerModel: number;
  /** Items done over all models, and planned. */
  done: number;
  planned: number;
  /** 'interrupted' (a reload or a closed tab) or 'failed' (with the error). */
  reason: 'interrupted' | 'failed';
  error: string | null;
  /** ISO 8601: when it last saved. */
  updatedAt: string;
}

/**
 * The settings a request runs with: the paper replication always uses the paper's generation (greedy,
 * at most 50 new tokens, every prompt wrapped as `Instruct: {prompt}\nOutput:`, full generations as its
 * hand scorers read them), whatever was chosen for other suites; its verdict is the answer verdict, and
 * candidate log-likelihoods may be recorded beside it.
 */
export function effectiveSettings(request: Pick<EvaluationRequest, 'suite' | 'settings'>): RunnerSettings {
  if (request.suite.kind !== 'paper') return request.settings;
  const { rankCandidates, generationBatch, precision } = request.settings;
  return {
    wrapper: 'paper',
    decoding: PAPER_GENERATION.decoding,
    maxNewTokens: PAPER_GENERATION.maxNewTokens,
    scoring: 'generation',
    rankCandidates,
    stopWhenAnswered: false,
    ...(generationBatch !== undefined ? { generationBatch } : {}),
    ...(precision !== undefined ? { precision } : {}),
  };
}

export function checkSeed(seed: number): number {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new EvalSetupError(`the seed must be a whole number of 0 or more, got ${seed}`);
  return seed;
}

/** "paper", "paper (5 per dataset and format)", or the suites of a custom run ("in_context, bigbench"). */
export function suiteName(items: readonly EvalItem[], suite: SuiteChoice): string {
  if (suite.kind === 'paper') return suite.perGroup === null ? 'paper' : `paper (${suite.perGroup} per dataset and format)`;
  const names: string[] = [];
  for (const item of items) {
    const name = item.suite === 'user' ? `user:${item.dataset}` : item.suite;
    if (!names.includes(name)) names.push(name);
  }
  return names.join(', ');
}

/** The user's saved datasets, as the evaluation reads them (the worker's dataset store provides this). */
export interface SavedDatasets {
  list(): Promise<Array<{ id: string; name: string; kind: string; rowCount: number }>>;
  info(id: string): Promise<{ name: string; kind: string }>;
  rows(id: string): Promise<PromptCompletionRow[]>;
}

/** The items of a request, in run order. */
export async function requestItems(data: BundledData, request: Pick<EvaluationRequest, 'suite' | 'seed'>, saved: () => Promise<SavedDatasets>): Promise<EvalItem[]> {
  const seed = checkSeed(request.seed);
  const suite = request.suite;
  if (suite.kind === 'paper') {
    const all = paperItems(data.paperPrompts);
    return suite.perGroup === null ? all : samplePaperItems(all, suite.perGroup, seed);
  }
  const items: EvalItem[] = [];
  if (suite.datasets.length > 0 && suite.formats.length > 0) {
    const pools = suite.datasets.map((id) => {
      const pool = data.pools[id];
      if (!pool) throw new EvalSetupError(`there is no bundled dataset "${id}" (there are ${Object.keys(data.pools).join(', ')})`);
      return pool;
    });
    items.push(...classificationItems(pools, { seed, count: suite.count, formats: suite.formats }));
  }
  if (suite.bigbench.length > 0) {
    items.push(
      ...bigBenchItems(data.paperPrompts, {
        seed,
        categories: suite.bigbench,
        variant: suite.bigbenchVariant,
        count: suite.bigbenchCount ?? undefined,
        instruction: suite.bigbenchInstruction,
      }),
    );
  }
  if (suite.savedDatasets.length > 0) {
    const store = await saved();
    for (const id of suite.savedDatasets) {
      const info = await store.info(id);
      items.push(...userDatasetItems({ name: info.name, kind: info.kind }, await store.rows(id), { seed, count: suite.count }));
    }
  }
  if (items.length === 0) throw new EvalSetupError('Nothing to evaluate: choose at least one dataset and format, a BIG-bench category or a saved dataset.');
  return items;
}

/** FNV-1a over the items' ids, prompts and targets: a resumed run must run exactly the items it started with. */
export function itemsFingerprint(items: readonly EvalItem[]): string {
  let h = 0x811c9dc5;
  for (const item of items) {
    for (const text of [item.id, item.prompt, item.target, '\u0000']) {
      for (let i = 0; i < text.length; i++) {
        h ^= text.charCodeAt(i);
        h = Math.imul(h, 0x01000193) >>> 0;
      }
    }
  }
  return `${items.length}:${h.toString(16).padStart(8, '0')}`;
}

/** The bundled data by URL, loaded once per worker (the Demo page shares it); a failed load is tried again. */
const bundledCache = new Map<string, Promise<BundledData>>();

export function bundledData(fetchFn: typeof fetch, dataUrl: string): Promise<BundledData> {
  let entry = bundledCache.get(dataUrl);
  if (!entry) {
    entry = loadBundledData(fetchFn, dataUrl);
    bundledCache.set(dataUrl, entry);
    entry.catch(() => bundledCache.delete(dataUrl));
  }
  return entry;
}

