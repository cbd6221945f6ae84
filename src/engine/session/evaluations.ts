import { AdapterStore } from '../adapters/store';
import type { Engine } from '../engine';
import { modelBusyWith, withModel, type LoadedModel, type Session } from './session';
import { BIG_BENCH_DATASETS, PAPER_MODEL_OF_REPO } from '../eval/paper';
import { cachedTokenizer, checkRunnerSettings, EvalSetupError, type EvalModel, prepareItems } from '../eval/prepare';
import { CLASSIFICATION_FORMATS } from '../data/prompts';
import {
  bundledData,
  effectiveSettings,
  type EvaluationOutcome,
  type EvaluationPlan,
  type EvaluationProgress,
  type EvaluationRequest,
  type EvaluationSetup,
  type EvaluationTargets,
  itemsFingerprint,
  requestItems,
  type ResumableEvaluation,
  type SavedDatasets,
  suiteName,
} from '../eval/requests';
import type { HandScore } from '../eval/results';
import { ResultsStore, type RunStatus, type StoredRun, type StoredRunSummary } from '../eval/results-store';
import { addWorkloads, estimateWorkMs, RTX_4090_CLASS, ThroughputMeter, type ThroughputRates, type Workload, workloadOf } from '../eval/throughput';
import type { EvalItem } from '../eval/types';
import { inferenceMismatch, runModelLabel, runModelOfRequest, type EvalJob } from './evaluation-run';

/**
 * Evaluation requests on the loaded model, from plan to saved runs, usable with or without a worker
 * (the worker's eval-api.ts only adapts this to comlink):
 *
 *   plan     the items of a request, their tokens and the time they take, without running anything;
 *   run      every chosen model (base and/or adapters) on the same items, one after another; each run's
 *            items are saved a batch at a time as they finish (evaluation-run.ts), so nothing finished
 *            is ever lost; a failure stops the request naming the item and why;
 *   resume   a request cut short by a reload, a closed tab or a failure goes on from its last saved
 *            batch, on exactly the same items (fingerprinted) and the same batches, so it ends with the
 *            results of an uninterrupted run;
 *   review   hand verdicts (right, half, wrong) on any item of a saved run.
 *
 * A request in progress keeps "job/<group id>" (what to resume from) until it completes or is
 * cancelled, and its running run says it is alive every few seconds: a 'running' run that has gone
 * quiet longer than STALE_MS, with no job of this engine behind it, was interrupted.
 */

/** After how long without a sign of life a running run counts as interrupted. */
export const STALE_MS = 15_000;

export class Evaluations {
  private results: Promise<ResultsStore> | null = null;
  private readonly jobs = new Map<string, { controller: AbortController; groupId: string | null }>();
  /** Groups running in this engine now. */
  private readonly live = new Set<string>();
  /** Rates measured by the last run here: this GPU's estimate for the next plan. */
  private lastRates: Partial<ThroughputRates> = {};
  /** Stored models' names by id ("microsoft/phi-2"), for labels. */
  private readonly names = new Map<string, string>();
  private readonly tokenizers = new WeakMap<object, EvalModel['tokenizer']>();
  private planning: AbortController | null = null;

  constructor(
    private readonly engine: Pick<Engine, 'platform'>,
    private readonly session: Session,
    private readonly savedDatasets: () => Promise<SavedDatasets>,
  ) {}

  private store(): Promise<ResultsStore> {
    if (!this.results) {
      const opening = this.session.store().then((store) => new ResultsStore(store));
      this.results = opening;
      opening.catch(() => (this.results = null));
    }
    return this.results;
  }

  /** The loaded model as the runner needs it, its tokenizer remembering prompts across plan, run and resume. */
  private evalModel(loaded: LoadedModel): EvalModel {
    let tokenizer = this.tokenizers.get(loaded.tokenizer);
    if (!tokenizer) this.tokenizers.set(loaded.tokenizer, (tokenizer = cachedTokenizer(loaded.tokenizer)));
    return { model: loaded.model, tokenizer, generator: loaded.generator };
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
      savedDatasets = (await (await this.savedDatasets()).list()).map((d) => ({ id: d.id, name: d.name, kind: d.kind, rowCount: d.rowCount }));
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

  /** "microsoft/phi-2 (int8)": the stored model's name, the weight mode and any inexact inference setting (runModelLabel). */
  async modelLabel(loaded: Pick<LoadedModel, 'id' | 'weightMode' | 'model'>): Promise<string> {
    let name = this.names.get(loaded.id);
    if (name === undefined) {
      try {
        name = (await (await this.session.store()).getModel(loaded.id))?.name ?? loaded.id;
      } catch {
        name = loaded.id; // the label is cosmetic: the run still records the model's id
      }
      this.names.set(loaded.id, name);
    }
    return runModelLabel(name, loaded.weightMode, loaded.model.options);
  }

  /** The paper's model an adapter stands for, from the Hub repository it came from. */
  private async paperModelOf(adapter: string | null): Promise<string | null> {
    if (adapter === null) return 'phi-2';
    try {
      const info = await (AdapterStore.over(await this.session.store())).get(adapter);
      return info.origin.kind === 'hub' ? (PAPER_MODEL_OF_REPO[info.origin.repo] ?? null) : null;
    } catch {
      return null; // an adapter made here and not stored: no paper model
    }
  }

  async targets(): Promise<EvaluationTargets> {
    const loaded = this.session.loaded;
    const adapters = loaded ? this.session.loadedAdapters() : [];
    const paperModels: Record<string, string | null> = {};
    for (const id of adapters) paperModels[id] = await this.paperModelOf(id);
    return {
      model: loaded ? { id: loaded.id, label: await this.modelLabel(loaded), weightMode: loaded.weightMode } : null,
      adapters,
      paperModels,
      busy: loaded ? modelBusyWith(loaded.generator) : null,
    };
  }

  private async items(request: Pick<EvaluationRequest, 'dataUrl' | 'suite' | 'seed'>): Promise<EvalItem[]> {
    return requestItems(await bundledData(this.engine.platform.fetch, request.dataUrl), request, this.savedDatasets);
  }

  /** The items and work of a request, with time estimates; a newer plan stops an older one's tokenising. */
  async plan(request: EvaluationRequest): Promise<EvaluationPlan> {
    const settings = effectiveSettings(request);
    checkRunnerSettings(settings);
    this.planning?.abort();
    const controller = (this.planning = new AbortController());
    const items = await this.items(request);
    const models = Math.max(1, request.adapters.length);
    const bySuite: Record<string, number> = {};
    for (const i of items) bySuite[i.suite] = (bySuite[i.suite] ?? 0) + 1;
    const loaded = this.session.loaded;
    let work: Workload | null = null;
    let sampleInput: string | null = null;
    let prepareMs: number | null = null;
    if (loaded) {
      const t0 = this.engine.platform.now();
      const prepared = await prepareItems(this.evalModel(loaded), items, settings, { signal: controller.signal });
      prepareMs = this.engine.platform.now() - t0;
      const one = workloadOf(prepared);
      work = Array.from({ length: models - 1 }).reduce<Workload>((acc) => addWorkloads(acc, one), one);
      sampleInput = prepared[0]?.input ?? null;
    }
    if (this.planning === controller) this.planning = null;
    const rates = this.lastRates;
    const complete = rates.prefillTokensPerSecond !== undefined && rates.decodeMsPerToken !== undefined;
    return {
      itemsPerModel: items.length,
      models,
      bySuite,
      settings,
      work,
      thisGpuMs:
        work && complete
          ? estimateWorkMs(work, { prefillTokensPerSecond: rates.prefillTokensPerSecond!, decodeMsPerToken: rates.decodeMsPerToken!, rankTokensPerSecond: rates.rankTokensPerSecond ?? rates.prefillTokensPerSecond! })
          : null,
      rtx4090Ms: work ? estimateWorkMs(work, RTX_4090_CLASS) : null,
      sampleInput,
      prepareMs,
    };
  }

  /** Runs a request: every chosen model on the same items, each run saved a batch at a time. */
  async run(request: EvaluationRequest, onProgress?: (p: EvaluationProgress) => void): Promise<EvaluationOutcome> {
    const loaded = this.session.requireModel();
    const settings = effectiveSettings(request);
    checkRunnerSettings(settings);
    if (request.adapters.length === 0) throw new EvalSetupError('Choose at least one model to evaluate: the base model or a loaded adapter.');
    // Resolve every adapter before starting, so a missing one fails now rather than after an hour.
    for (const id of request.adapters) this.session.adapter(id);
    const { jobId, ...rest } = request;
    const job: EvalJob = {
      version: 1,
      request: { ...rest, settings },
      modelId: loaded.id,
      modelLabel: await this.modelLabel(loaded),
      inference: { ...loaded.model.options },
      fingerprint: '',
      suite: '',
      itemCount: 0,
      runIds: request.adapters.map(() => null),
    };
    return this.drive(jobId, crypto.randomUUID(), job, onProgress);
  }

  /** Resumes a request that stopped part way (see ResumableEvaluation), on the model it started on. */
  async resume(jobId: string, groupId: string, onProgress?: (p: EvaluationProgress) => void): Promise<EvaluationOutcome> {
    if (this.live.has(groupId)) throw new EvalSetupError('That evaluation is running already.');
    const job = await (await this.store()).getJob<EvalJob>(groupId);
    if (!job) throw new EvalSetupError('That evaluation cannot be resumed any more: it finished, or was discarded in another tab.');
    return this.drive(jobId, groupId, job, onProgress);
  }

  /** Requests that stopped part way and can be resumed, newest first. */
  async resumable(): Promise<ResumableEvaluation[]> {
    const store = await this.store();
    const [jobs, runs] = await Promise.all([store.listJobs<EvalJob>(), store.list()]);
    const out: ResumableEvaluation[] = [];
    for (const { groupId, job } of jobs) {
      if (this.live.has(groupId)) continue;
      const mine = runs.filter((r) => r.groupId === groupId);
      const running = mine.find((r) => r.status === 'running');
      if (running && !this.isStale(running)) continue; // alive, in another tab
      const failed = mine.find((r) => r.status === 'failed');
      out.push({
        groupId,
        suite: job.suite,
        modelLabel: job.modelLabel,
        adapters: job.request.adapters,
        itemsPerModel: job.itemCount,
        done: mine.reduce((a, r) => a + r.itemCount, 0),
        planned: job.itemCount * job.request.adapters.length,
        reason: failed ? 'failed' : 'interrupted',
        error: failed?.error ?? null,
        updatedAt: mine.reduce((a, r) => (r.updatedAt > a ? r.updatedAt : a), ''),
      });
    }
    return out.sort((a, b) => (a.updatedAt < b.updatedAt ? 1 : -1));
  }

  /** Gives up a resumable request: its runs keep their items and are marked cancelled. */
  async discard(groupId: string): Promise<void> {
    if (this.live.has(groupId)) throw new EvalSetupError('That evaluation is running; cancel it instead.');
    const store = await this.store();
    for (const run of (await store.list()).filter((r) => r.groupId === groupId && r.status === 'running')) await store.finish(run.id, 'cancelled');
    await store.deleteJob(groupId);
  }

  private isStale(run: StoredRunSummary): boolean {
    return Date.now() - Date.parse(run.updatedAt) > STALE_MS;
  }

  /** Runs (or goes on with) a request's models in turn; see the top of this file. */
  private async drive(jobId: string, groupId: string, job: EvalJob, onProgress?: (p: EvaluationProgress) => void): Promise<EvaluationOutcome> {
    if (this.jobs.has(jobId)) throw new EvalSetupError(`job ${jobId} is already running`);
    const controller = new AbortController();
    this.jobs.set(jobId, { controller, groupId });
    this.live.add(groupId);
    this.planning?.abort();
    const now = () => this.engine.platform.now();
    const started = now();
    const models = job.request.adapters.length;
    const base: EvaluationProgress = {
      jobId,
      phase: 'preparing',
      model: 0,
      models,
      label: job.modelLabel,
      done: 0,
      total: 0,
      correct: 0,
      overallDone: 0,
      overallTotal: 0,
      elapsedMs: 0,
      etaMs: null,
      decodeTokensPerSecond: null,
      prefillTokensPerSecond: null,
      last: null,
    };
    try {
      const loaded = await this.modelFor(job, (p) => onProgress?.({ ...base, ...p, elapsedMs: now() - started }));
      return await withModel(loaded.generator, 'an evaluation on the Evaluate page', async () => {
        const mismatch = inferenceMismatch(job, loaded.model.options);
        if (mismatch) throw new EvalSetupError(mismatch);
        const store = await this.store();
        const model = this.evalModel(loaded);
        const settings = job.request.settings;
        onProgress?.({ ...base, elapsedMs: now() - started });
        const items = await this.items(job.request);
        const fingerprint = itemsFingerprint(items);
        if (job.fingerprint === '') {
          job.fingerprint = fingerprint;
          job.suite = suiteName(items, job.request.suite);
          job.itemCount = items.length;
        } else if (job.fingerprint !== fingerprint) {
          throw new EvalSetupError(
            `The items of this evaluation changed since it started (${items.length} now, ${job.itemCount} then: a saved dataset was edited or replaced). ` +
              'A resumed run must run the items it started with; discard it and start a new one.',
          );
        }
        const prepared = await prepareItems(model, items, settings, {
          signal: controller.signal,
          onProgress: (done, total) => onProgress?.({ ...base, phase: 'preparing', done, total, elapsedMs: now() - started }),
        });
        await store.putJob(groupId, job);
        const perModel = workloadOf(prepared);
        const meter = new ThroughputMeter();
        const suite = job.suite;
        const runs: StoredRunSummary[] = [];
        let status: Exclude<RunStatus, 'running'> = 'complete';
        let error: string | null = null;
        for (const [m, adapter] of job.request.adapters.entries()) {
          const later = Array.from({ length: models - m - 1 }).reduce<Workload>((acc) => addWorkloads(acc, perModel), { items: 0, promptTokens: 0, decodeSteps: 0, rankTokens: 0 });
          const label = adapter ? `${job.modelLabel} + ${adapter}` : job.modelLabel;
          const outcome = await runModelOfRequest(store, groupId, job, m, prepared, suite, {
            model,
            loraOf: (id) => this.session.adapter(id),
            paperModelOf: (id) => this.paperModelOf(id),
            now,
            meter,
            later,
            signal: controller.signal,
            report: (p) => onProgress?.({ ...base, ...p, phase: p.phase ?? 'running', model: m, label, overallDone: m * prepared.length + p.done, overallTotal: models * prepared.length, elapsedMs: now() - started }),
          });
          if (outcome.kept !== false) runs.push(outcome.summary);
          if (outcome.summary.status !== 'complete') {
            status = outcome.summary.status === 'running' ? 'failed' : outcome.summary.status;
            error = outcome.summary.error ?? null;
            break;
          }
        }
        this.lastRates = { ...this.lastRates, ...meter.rates() };
        if (status !== 'failed') await store.deleteJob(groupId);
        return { groupId, status, runs, error, resumable: status === 'failed' };
      });
    } finally {
      this.jobs.delete(jobId);
      this.live.delete(groupId);
    }
  }

  /** The model a job runs on: the loaded one, or (resuming after a reload) loaded now, with its adapters. */
  private async modelFor(job: EvalJob, report: (p: Partial<EvaluationProgress>) => void): Promise<LoadedModel> {
    let loaded = this.session.loaded;
    if (loaded?.id !== job.modelId) {
      report({ phase: 'loading', label: `Loading ${job.modelLabel} onto the GPU` });
      try {
        loaded = await this.session.load(job.modelId, (p) => report({ phase: 'loading', bytes: { done: p.bytesDone, total: p.bytesTotal } }));
      } catch (err) {
        throw new EvalSetupError(`This evaluation ran on ${job.modelLabel}, which could not be loaded: ${(err as Error).message}`);
      }
    }
    const missing = job.request.adapters.filter((a): a is string => a !== null && !this.session.loadedAdapters().includes(a));
    if (missing.length > 0) {
      const adapters = AdapterStore.over(await this.session.store());
      for (const id of missing) {
        try {
          this.session.addAdapter(id, await adapters.files(id));
        } catch (err) {
          throw new EvalSetupError(`This evaluation used the adapter "${id}", which could not be loaded: ${(err as Error).message} Load it on the Adapters page, then resume.`);
        }
      }
    }
    return loaded;
  }

  cancel(jobId: string): void {
    this.jobs.get(jobId)?.controller.abort();
  }

  /** Every saved run, newest first; a 'running' run nobody runs any more shows as interrupted. */
  async list(): Promise<Array<StoredRunSummary & { interrupted: boolean }>> {
    const runs = await (await this.store()).list();
    return runs.map((r) => ({ ...r, interrupted: r.status === 'running' && !this.live.has(r.groupId) && this.isStale(r) }));
  }

  async get(id: string): Promise<StoredRun> {
    return (await this.store()).get(id);
  }

  async delete(id: string): Promise<void> {
    const store = await this.store();
    const summary = await store.summary(id);
    if (summary.status === 'running' && this.live.has(summary.groupId)) throw new EvalSetupError('That run is in progress; cancel it first.');
    await store.delete(id);
  }

  /** Sets (or clears, with null) a hand review of one item of a saved run. */
  async review(id: string, itemId: string, score: HandScore | null): Promise<StoredRunSummary> {
    return (await this.store()).review(id, itemId, score);
  }

  async export(ids: string[], kind: 'csv' | 'json'): Promise<{ fileName: string; text: string; type: string }> {
    const store = await this.store();
    const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-');
    if (kind === 'csv') return { fileName: `phi2-eval-${stamp}.csv`, text: await store.exportCsv(ids), type: 'text/csv;charset=utf-8' };
    if (kind === 'json') return { fileName: `phi2-eval-${stamp}.json`, text: await store.exportJson(ids), type: 'application/json' };
    throw new EvalSetupError(`unknown export format "${String(kind)}" (csv or json)`);
  }

  async import(json: string): Promise<StoredRunSummary[]> {
    return (await this.store()).importJson(json);
  }
}
