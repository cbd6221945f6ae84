import type { Engine } from '../engine/engine';
import { type BundledData, loadBundledData } from '../engine/eval/bundled';
import { BIG_BENCH_DATASETS, type BigBenchDataset, paperItems } from '../engine/eval/paper';
import { type ClassificationFormat, CLASSIFICATION_FORMATS } from '../engine/eval/prompts';
import type { EvalRunResult } from '../engine/eval/results';
import { ResultsStore, type RunStatus, type StoredRun, type StoredRunSummary } from '../engine/eval/results-store';
import {
  addWorkloads,
  checkRunnerSettings,
  type EvalModel,
  EvalSetupError,
  estimateWorkMs,
  prepareItems,
  RTX_4090_CLASS,
  runPrepared,
  type RunItemResult,
  type RunnerSettings,
  type ThroughputRates,
  ThroughputMeter,
  modelBusyWith,
  userDatasetItems,
  withModel,
  workloadOf,
  type Workload,
} from '../engine/eval/runner';
import { bigBenchItems, classificationItems } from '../engine/eval/suites';
import type { EvalItem } from '../engine/eval/types';
import type { LoadedModel, Session } from '../engine/session';
import { UserDataStore } from './data-store';

/**
 * The Evaluate page's side of the engine worker: builds the items of a request (the paper's 730 prompts,
 * or suites drawn from the bundled pools, BIG-bench and saved datasets with a seed), runs them on the
 * loaded model and each chosen adapter in turn (runner.ts), and keeps every run in IndexedDB
 * (results-store.ts: the `results` store of the app's database).
 */
export interface EvalApi {
  /** What can be evaluated: bundled tasks, formats, BIG-bench categories, saved datasets, the paper's numbers. */
  evaluationSetup(dataUrl: string): Promise<EvaluationSetup>;
  /** The model on the GPU and the adapters loaded beside it; also what holds the model now, if anything. */
  evaluationTargets(): Promise<EvaluationTargets>;
  /** The items and work of a request, with time estimates, without running anything. */
  planEvaluation(request: EvaluationRequest): Promise<EvaluationPlan>;
  /**
   * Runs a request: every chosen model (base and/or adapters) on the same items, one after another,
   * each saved when it ends (also when cancelled or failed part way: what finished is kept).
   */
  runEvaluation(request: EvaluationRequest, onProgress?: (progress: EvaluationProgress) => void): Promise<EvaluationOutcome>;
  /** Stops a running request at the next token; runEvaluation then resolves with status 'cancelled'. */
  cancelEvaluation(jobId: string): Promise<void>;
  listEvaluations(): Promise<StoredRunSummary[]>;
  getEvaluation(id: string): Promise<StoredRun>;
  deleteEvaluation(id: string): Promise<void>;
  exportEvaluations(ids: string[], kind: 'csv' | 'json'): Promise<{ fileName: string; blob: Blob }>;
  /** Reads a results JSON file (as exported here) and saves its runs. */
  importEvaluations(file: File): Promise<StoredRunSummary[]>;
}

export type { RunStatus, StoredRun, StoredRunSummary } from '../engine/eval/results-store';
export type { RunItemResult, RunnerSettings, ThroughputRates } from '../engine/eval/runner';
export type { AccuracyRow, EvalItemResult } from '../engine/eval/results';

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
  /** What holds the model (an evaluation, the demo), or null when it is free. */
  busy: string | null;
}

export type SuiteChoice =
  | { kind: 'paper' }
  | {
      kind: 'custom';
      /** Bundled classification datasets (teh, teo, subj, climate) x formats (the in-context three and/or flipped). */
      datasets: string[];
      formats: ClassificationFormat[];
      /** Items per dataset and format (the paper: 25). */
      count: number;
      bigbench: BigBenchDataset[];
      /** Items per BIG-bench category (at most the paper's), or null for all of them. */
      bigbenchCount: number | null;
      bigbenchVariant: 'paper' | 'resampled';
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

export interface EvaluationPlan {
  itemsPerModel: number;
  models: number;
  /** Items per suite, for the summary line. */
  bySuite: Record<string, number>;
  /** Null when no model is loaded (tokens are counted with its tokenizer). */
  work: Workload | null;
  /** Milliseconds at most (every generation using its budget), at the rates last measured here, or null. */
  thisGpuMs: number | null;
  /** Milliseconds at most on an RTX 4090-class GPU (runner.ts explains the rates). */
  rtx4090Ms: number | null;
  /** The first item's exact model input, to show what is sent. */
  sampleInput: string | null;
}

export interface EvaluationProgress {
  jobId: string;
  phase: 'preparing' | 'running' | 'saving';
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
}

export interface EvaluationOutcome {
  groupId: string;
  status: RunStatus;
  /** Saved runs, one per model that finished at least one item. */
  runs: StoredRunSummary[];
  /** Why it failed, when it did. */
  error: string | null;
}

/** The bundled data by URL, loaded once per worker (the Demo page shares it). */
const bundledCache = new Map<string, Promise<BundledData>>();

export function bundledData(fetchFn: typeof fetch, dataUrl: string): Promise<BundledData> {
  let entry = bundledCache.get(dataUrl);
  if (!entry) {
    entry = loadBundledData(fetchFn, dataUrl);
    bundledCache.set(dataUrl, entry);
    entry.catch(() => bundledCache.delete(dataUrl)); // a failed load is tried again next time
  }
  return entry;
}

export function evalModelOf(loaded: LoadedModel): EvalModel {
  return { model: loaded.model, tokenizer: loaded.tokenizer, generator: loaded.generator };
}

function checkSeed(seed: number): number {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new EvalSetupError(`the seed must be a whole number of 0 or more, got ${seed}`);
  return seed;
}

function suiteName(items: readonly EvalItem[], suite: SuiteChoice): string {
  if (suite.kind === 'paper') return 'paper';
  const names: string[] = [];
  for (const item of items) {
    const name = item.suite === 'user' ? `user:${item.dataset}` : item.suite;
    if (!names.includes(name)) names.push(name);
  }
  return names.join(', ');
}

export class EvalWorkspace {
  private results: Promise<ResultsStore> | null = null;
  private userData: Promise<UserDataStore> | null = null;
  private readonly jobs = new Map<string, AbortController>();
  /** Rates measured by the last run here: this GPU's estimate for the next plan. */
  private lastRates: Partial<ThroughputRates> = {};
  /** Stored models' names by id ("microsoft/phi-2"), for labels. */
  private readonly names = new Map<string, string>();

  constructor(
    private readonly engine: Pick<Engine, 'platform'>,
    private readonly session: Session,
  ) {}

  private resultsStore(): Promise<ResultsStore> {
    if (!this.results) {
      const opening = this.session.store().then((store) => new ResultsStore(store));
      this.results = opening;
      opening.catch(() => (this.results = null));
    }
    return this.results;
  }

  private userDataStore(): Promise<UserDataStore> {
    if (!this.userData) {
      const opening = UserDataStore.open(this.engine.platform.indexedDB);
      this.userData = opening;
      opening.catch(() => (this.userData = null));
    }
    return this.userData;
  }

  async setup(dataUrl: string): Promise<EvaluationSetup> {
    const data = await bundledData(this.engine.platform.fetch, dataUrl);
    const datasets = Object.values(data.catalog.classification).map((t) => ({
      id: t.id,
      name: t.name,
      instruction: t.instruction,
      labels: Object.values(t.labels),
      flippedLabels: Object.values(t.flippedLabels),
      rows: data.pools[t.id]?.rows.length ?? 0,
    }));
    const bigbench = BIG_BENCH_DATASETS.map((id) => ({ id, prompts: data.paperPrompts.filter((r) => r.suite === 'bigbench' && r.dataset === id).length }));
    const cells: EvaluationSetup['paper']['cells'] = [];
    for (const [key, byModel] of data.paperResults.cells) {
      const [suite, dataset, format] = key.split('/');
      for (const [model, { correct, total }] of byModel) cells.push({ suite, dataset, format, model, correct, total });
    }
    let savedDatasets: EvaluationSetup['savedDatasets'] = [];
    let savedDatasetsError: string | null = null;
    try {
      savedDatasets = (await (await this.userDataStore()).list()).map((d) => ({ id: d.id, name: d.name, kind: d.kind, rowCount: d.rowCount }));
    } catch (err) {
      savedDatasetsError = `Saved datasets could not be read: ${(err as Error).message}`;
    }
    return {
      datasets,
      formats: [...CLASSIFICATION_FORMATS],
      bigbench,
      paperPromptCount: data.paperPrompts.length,
      paper: { models: data.paperResults.models, cells },
      savedDatasets,
      savedDatasetsError,
    };
  }

  /** "microsoft/phi-2 (int8)": the stored model's name and the weight mode, as runs are labelled. */
  async modelLabel(loaded: Pick<LoadedModel, 'id' | 'weightMode'>): Promise<string> {
    let name = this.names.get(loaded.id);
    if (name === undefined) {
      try {
        name = (await (await this.session.store()).getModel(loaded.id))?.name ?? loaded.id;
      } catch {
        name = loaded.id; // the label is cosmetic: the run still records the model's id
      }
      this.names.set(loaded.id, name);
    }
    return `${name} (${loaded.weightMode})`;
  }

  async targets(): Promise<EvaluationTargets> {
    const loaded = this.session.loaded;
    return {
      model: loaded ? { id: loaded.id, label: await this.modelLabel(loaded), weightMode: loaded.weightMode } : null,
      adapters: loaded ? this.session.loadedAdapters() : [],
      busy: loaded ? modelBusyWith(loaded.generator) : null,
    };
  }

  /** The items of a request, in run order. */
  async items(request: Pick<EvaluationRequest, 'dataUrl' | 'suite' | 'seed'>): Promise<EvalItem[]> {
    const seed = checkSeed(request.seed);
    const data = await bundledData(this.engine.platform.fetch, request.dataUrl);
    const suite = request.suite;
    if (suite.kind === 'paper') return paperItems(data.paperPrompts);
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
      items.push(...bigBenchItems(data.paperPrompts, { seed, categories: suite.bigbench, variant: suite.bigbenchVariant, count: suite.bigbenchCount ?? undefined }));
    }
    if (suite.savedDatasets.length > 0) {
      const store = await this.userDataStore();
      for (const id of suite.savedDatasets) {
        const info = await store.info(id);
        items.push(...userDatasetItems({ name: info.name, kind: info.kind }, await store.rows(id), { seed, count: suite.count }));
      }
    }
    if (items.length === 0) throw new EvalSetupError('Nothing to evaluate: choose at least one dataset and format, a BIG-bench category or a saved dataset.');
    return items;
  }

  async plan(request: EvaluationRequest): Promise<EvaluationPlan> {
    checkRunnerSettings(request.settings);
    const items = await this.items(request);
    const models = Math.max(1, request.adapters.length);
    const bySuite: Record<string, number> = {};
    for (const i of items) bySuite[i.suite] = (bySuite[i.suite] ?? 0) + 1;
    const loaded = this.session.loaded;
    let work: Workload | null = null;
    let sampleInput: string | null = null;
    if (loaded) {
      const prepared = await prepareItems(evalModelOf(loaded), items, request.settings);
      const one = workloadOf(prepared);
      work = Array.from({ length: models - 1 }).reduce<Workload>((acc) => addWorkloads(acc, one), one);
      sampleInput = prepared[0]?.input ?? null;
    }
    const rates = this.lastRates;
    const complete = rates.prefillTokensPerSecond !== undefined && rates.decodeMsPerToken !== undefined;
    return {
      itemsPerModel: items.length,
      models,
      bySuite,
      work,
      thisGpuMs:
        work && complete
          ? estimateWorkMs(work, { prefillTokensPerSecond: rates.prefillTokensPerSecond!, decodeMsPerToken: rates.decodeMsPerToken!, rankTokensPerSecond: rates.rankTokensPerSecond ?? rates.prefillTokensPerSecond! })
          : null,
      rtx4090Ms: work ? estimateWorkMs(work, RTX_4090_CLASS) : null,
      sampleInput,
    };
  }

  async run(request: EvaluationRequest, onProgress?: (p: EvaluationProgress) => void): Promise<EvaluationOutcome> {
    const loaded = this.session.requireModel();
    checkRunnerSettings(request.settings);
    if (request.adapters.length === 0) throw new EvalSetupError('Choose at least one model to evaluate: the base model or a loaded adapter.');
    if (this.jobs.has(request.jobId)) throw new EvalSetupError(`job ${request.jobId} is already running`);
    // Resolve every adapter before starting, so a missing one fails now rather than after an hour.
    const states = request.adapters.map((id) => ({ id, state: this.session.adapter(id) }));
    const controller = new AbortController();
    this.jobs.set(request.jobId, controller);
    const now = () => this.engine.platform.now();
    const started = now();
    try {
      return await withModel(loaded.generator, 'an evaluation on the Evaluate page', async () => {
        const model = evalModelOf(loaded);
        const label = await this.modelLabel(loaded);
        const base: Omit<EvaluationProgress, 'phase' | 'done' | 'total'> = {
          jobId: request.jobId,
          model: 0,
          models: states.length,
          label,
          correct: 0,
          overallDone: 0,
          overallTotal: 0,
          elapsedMs: 0,
          etaMs: null,
          decodeTokensPerSecond: null,
          prefillTokensPerSecond: null,
          last: null,
        };
        onProgress?.({ ...base, phase: 'preparing', done: 0, total: 0 });
        const items = await this.items(request);
        const prepared = await prepareItems(model, items, request.settings, {
          signal: controller.signal,
          onProgress: (done, total) => onProgress?.({ ...base, phase: 'preparing', done, total, elapsedMs: now() - started }),
        });
        const perModel = workloadOf(prepared);
        const meter = new ThroughputMeter();
        const groupId = crypto.randomUUID();
        const store = await this.resultsStore();
        const runs: StoredRunSummary[] = [];
        const suite = suiteName(items, request.suite);
        let status: RunStatus = 'complete';
        let error: string | null = null;
        for (const [m, { id: adapter, state }] of states.entries()) {
          const finished: RunItemResult[] = [];
          const startedAt = new Date().toISOString();
          const t0 = now();
          const later = Array.from({ length: states.length - m - 1 }).reduce<Workload>((acc) => addWorkloads(acc, perModel), {
            items: 0,
            promptTokens: 0,
            decodeSteps: 0,
            rankTokens: 0,
          });
          let outcome: Awaited<ReturnType<typeof runPrepared>> | null = null;
          try {
            outcome = await runPrepared(model, prepared, request.settings, {
              adapter: state,
              signal: controller.signal,
              now,
              meter,
              laterWork: later,
              onItem: (r) => finished.push(r),
              onProgress: (p) => {
                const last = p.itemId === null ? null : finished[finished.length - 1];
                onProgress?.({
                  ...base,
                  phase: 'running',
                  model: m,
                  label: adapter ? `${label} + ${adapter}` : label,
                  done: p.done,
                  total: p.total,
                  correct: p.correct,
                  overallDone: m * prepared.length + p.done,
                  overallTotal: states.length * prepared.length,
                  elapsedMs: now() - started,
                  etaMs: p.etaMs,
                  decodeTokensPerSecond: p.decodeTokensPerSecond,
                  prefillTokensPerSecond: p.prefillTokensPerSecond,
                  last: last ? { id: last.id, correct: last.verdict.correct, extracted: last.verdict.extracted, target: last.target } : null,
                });
              },
            });
          } catch (err) {
            status = 'failed';
            error = (err as Error)?.message ?? String(err);
          }
          if (outcome?.cancelled) status = 'cancelled';
          if (finished.length > 0) {
            onProgress?.({ ...base, phase: 'saving', model: m, done: finished.length, total: prepared.length, elapsedMs: now() - started });
            const run: EvalRunResult = { model: label, adapter, seed: request.seed, settings: request.settings, suite, items: finished, startedAt, durationMs: now() - t0 };
            runs.push(
              await store.save(run, {
                groupId,
                modelId: loaded.id,
                plannedCount: prepared.length,
                status: finished.length === prepared.length ? 'complete' : status === 'complete' ? 'cancelled' : status,
                ...(error !== null ? { error } : {}),
                rates: meter.rates(),
                promptTokens: outcome?.promptTokens ?? finished.reduce((a, r) => a + (r.generatedTokens > 0 ? r.promptTokens : 0), 0),
                generatedTokens: outcome?.generatedTokens ?? finished.reduce((a, r) => a + r.generatedTokens, 0),
              }),
            );
          }
          if (status !== 'complete') break;
        }
        this.lastRates = { ...this.lastRates, ...meter.rates() };
        return { groupId, status, runs, error };
      });
    } finally {
      this.jobs.delete(request.jobId);
    }
  }

  cancel(jobId: string): void {
    this.jobs.get(jobId)?.abort();
  }

  async list(): Promise<StoredRunSummary[]> {
    return (await this.resultsStore()).list();
  }

  async get(id: string): Promise<StoredRun> {
    return (await this.resultsStore()).get(id);
  }

  async delete(id: string): Promise<void> {
    await (await this.resultsStore()).delete(id);
  }

  async export(ids: string[], kind: 'csv' | 'json'): Promise<{ fileName: string; blob: Blob }> {
    const store = await this.resultsStore();
    const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-');
    if (kind === 'csv') return { fileName: `phi2-eval-${stamp}.csv`, blob: new Blob([await store.exportCsv(ids)], { type: 'text/csv;charset=utf-8' }) };
    if (kind === 'json') return { fileName: `phi2-eval-${stamp}.json`, blob: new Blob([await store.exportJson(ids)], { type: 'application/json' }) };
    throw new EvalSetupError(`unknown export format "${String(kind)}" (csv or json)`);
  }

  async import(file: File): Promise<StoredRunSummary[]> {
    return (await this.resultsStore()).importJson(await file.text());
  }
}

export function evalApi(engine: Pick<Engine, 'platform'>, session: Session): EvalApi {
  const w = new EvalWorkspace(engine, session);
  return {
    evaluationSetup: (dataUrl) => w.setup(dataUrl),
    evaluationTargets: () => w.targets(),
    planEvaluation: (request) => w.plan(request),
    runEvaluation: (request, onProgress) => w.run(request, onProgress),
    cancelEvaluation: async (jobId) => w.cancel(jobId),
    listEvaluations: () => w.list(),
    getEvaluation: (id) => w.get(id),
    deleteEvaluation: (id) => w.delete(id),
    exportEvaluations: (ids, kind) => w.export(ids, kind),
    importEvaluations: (file) => w.import(file),
  };
}
