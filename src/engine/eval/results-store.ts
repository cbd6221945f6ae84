import { StoreError, isQuotaError } from '../store/errors';
import { STORES } from '../store/schema';
import type { WeightStore } from '../store/store';
import { accuracyTable, resultsFromJson, resultsToCsv, resultsToJson, type AccuracyRow, type EvalItemResult, type EvalRunResult, type EvalSettings } from './results';
import { rankAccuracy, type RunnerSettings, type ThroughputRates } from './runner';

/**
 * Evaluation results kept between visits, in the `results` object store of the app's database
 * ("phi2-lora", see store/schema.ts; reached through session.store().db). Each run is two records:
 *
 *   "run/<id>"    { id, summary }   what lists and comparison tables need: labels, settings, accuracy per
 *                                   dataset and format; a few KB
 *   "items/<id>"  { id, items }     every item: prompt, generation, target, verdict, log-likelihoods;
 *                                   up to a few MB for the paper's 730 prompts
 *
 * so listing reads only the summaries (a key range over "run/"), and a run's items are read when it is
 * opened. Both records of a run are written and deleted in one transaction.
 */

export type RunStatus = 'complete' | 'cancelled' | 'failed';

export interface StoredRunSummary {
  id: string;
  /** Runs made by one request (the base model and adapters on the same items) share it. */
  groupId: string;
  /** Label of the model: "<model id> (int8)". */
  model: string;
  /** The stored model's id, or null for imported results. */
  modelId: string | null;
  adapter: string | null;
  seed: number;
  /** EvalSettings, plus the runner's options for runs made here. */
  settings: EvalSettings & Partial<RunnerSettings>;
  /** What was run: "paper", or the suites of a custom run ("in_context, bigbench"). */
  suite: string;
  /** ISO 8601. */
  startedAt: string;
  durationMs: number;
  itemCount: number;
  /** Items the run was asked to do (more than itemCount when cancelled or failed). */
  plannedCount: number;
  correct: number;
  status: RunStatus;
  /** Why a failed run stopped. */
  error?: string;
  /** Accuracy per (suite, dataset, format), with "all" rows per (suite, format). */
  cells: AccuracyRow[];
  /** Rank classification over the items that have candidate log-likelihoods (whatever decided the verdict). */
  rank: { correct: number; total: number };
  /** Measured on this GPU during the run. */
  rates?: Partial<ThroughputRates>;
  promptTokens?: number;
  generatedTokens?: number;
}

export interface StoredRun extends StoredRunSummary {
  items: EvalItemResult[];
}

/** What a run adds to EvalRunResult when saved. */
export interface RunRecordInfo {
  groupId: string;
  modelId: string | null;
  plannedCount: number;
  status: RunStatus;
  error?: string;
  rates?: Partial<ThroughputRates>;
  promptTokens?: number;
  generatedTokens?: number;
}

const RUN = 'run/';
const ITEMS = 'items/';
/** Above every character a run id contains, so [RUN, RUN + HIGH] spans all run keys. */
const HIGH = '\uffff';

interface SummaryRecord {
  id: string;
  summary: StoredRunSummary;
}

interface ItemsRecord {
  id: string;
  items: EvalItemResult[];
}

export function summarize(run: EvalRunResult, id: string, info: RunRecordInfo): StoredRunSummary {
  const summary: StoredRunSummary = {
    id,
    groupId: info.groupId,
    model: run.model,
    modelId: info.modelId,
    adapter: run.adapter,
    seed: run.seed,
    settings: run.settings,
    suite: run.suite,
    startedAt: run.startedAt,
    durationMs: run.durationMs,
    itemCount: run.items.length,
    plannedCount: info.plannedCount,
    correct: run.items.filter((i) => i.verdict.correct).length,
    status: info.status,
    cells: accuracyTable([run]),
    rank: rankAccuracy(run.items),
  };
  if (info.error !== undefined) summary.error = info.error;
  if (info.rates) summary.rates = info.rates;
  if (info.promptTokens !== undefined) summary.promptTokens = info.promptTokens;
  if (info.generatedTokens !== undefined) summary.generatedTokens = info.generatedTokens;
  return summary;
}

/** A stored run as EvalRunResult (what the CSV and JSON exports and accuracy tables take), with its record fields. */
export function toRunResult(run: StoredRun): EvalRunResult & { id: string; modelId: string | null; status: RunStatus } {
  return {
    id: run.id,
    model: run.model,
    modelId: run.modelId,
    adapter: run.adapter,
    seed: run.seed,
    settings: run.settings,
    suite: run.suite,
    items: run.items,
    startedAt: run.startedAt,
    durationMs: run.durationMs,
    status: run.status,
  };
}

export class ResultsStore {
  constructor(private readonly store: Pick<WeightStore, 'db'>) {}

  private get db() {
    return this.store.db;
  }

  /** Saves a run under a new id; returns its summary. */
  async save(run: EvalRunResult, info: RunRecordInfo): Promise<StoredRunSummary> {
    const id = crypto.randomUUID();
    const summary = summarize(run, id, info);
    const records: [SummaryRecord, ItemsRecord] = [
      { id: RUN + id, summary },
      { id: ITEMS + id, items: run.items },
    ];
    await this.write(`saving the results of ${run.model}${run.adapter ? ` + ${run.adapter}` : ''}`, { put: records });
    return summary;
  }

  /** Every run's summary, newest first. */
  async list(): Promise<StoredRunSummary[]> {
    const records = (await this.read('listing saved results', () =>
      this.db.getAll(STORES.results, IDBKeyRange.bound(RUN, RUN + HIGH)),
    )) as unknown as SummaryRecord[];
    return records.map((r) => r.summary).sort((a, b) => (a.startedAt < b.startedAt ? 1 : a.startedAt > b.startedAt ? -1 : 0));
  }

  async get(id: string): Promise<StoredRun> {
    const [summary, items] = (await this.read(`reading results ${id}`, () =>
      Promise.all([this.db.get(STORES.results, RUN + id), this.db.get(STORES.results, ITEMS + id)]),
    )) as unknown as [SummaryRecord | undefined, ItemsRecord | undefined];
    if (!summary) throw new StoreError('missing', `No saved evaluation "${id}": it may have been deleted in another tab.`);
    if (!items) throw new StoreError('corrupt', `The saved evaluation "${id}" has lost its items; delete it and run it again.`);
    return { ...summary.summary, items: items.items };
  }

  async delete(id: string): Promise<void> {
    await this.write(`deleting results ${id}`, { delete: [RUN + id, ITEMS + id] });
  }

  /** One CSV row per item of the given runs (results.ts RESULT_CSV_COLUMNS). */
  async exportCsv(ids: readonly string[]): Promise<string> {
    return resultsToCsv(await this.runs(ids));
  }

  /** The given runs in the results JSON format (resultsFromJson reads it back, here or in the score tools). */
  async exportJson(ids: readonly string[]): Promise<string> {
    return resultsToJson(await this.runs(ids));
  }

  /** Saves every run of a results JSON file (as exported) under new ids; one group per file. */
  async importJson(json: string): Promise<StoredRunSummary[]> {
    let runs: EvalRunResult[];
    try {
      runs = resultsFromJson(json);
    } catch (err) {
      throw new StoreError('failed', `This file cannot be imported: ${(err as Error).message}`);
    }
    const groupId = crypto.randomUUID();
    const saved: StoredRunSummary[] = [];
    for (const run of runs) {
      const extra = run as Partial<{ modelId: string | null; status: RunStatus }>;
      saved.push(
        await this.save(run, {
          groupId,
          modelId: extra.modelId ?? null,
          plannedCount: run.items.length,
          status: extra.status === 'cancelled' || extra.status === 'failed' ? extra.status : 'complete',
        }),
      );
    }
    return saved;
  }

  private async runs(ids: readonly string[]): Promise<EvalRunResult[]> {
    if (ids.length === 0) throw new StoreError('missing', 'Choose at least one saved evaluation to export.');
    return Promise.all(ids.map(async (id) => toRunResult(await this.get(id))));
  }

  private async read<T>(what: string, op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      throw new StoreError('failed', `IndexedDB failed while ${what}: ${(err as Error)?.message ?? String(err)}`);
    }
  }

  /** Puts or deletes records in one readwrite transaction: all of them happen or none. */
  private async write(what: string, ops: { put?: Array<SummaryRecord | ItemsRecord>; delete?: string[] }): Promise<void> {
    let tx;
    try {
      tx = this.db.transaction(STORES.results, 'readwrite');
    } catch (err) {
      throw new StoreError('failed', `IndexedDB failed while ${what}: ${(err as Error)?.message ?? String(err)}`);
    }
    try {
      await Promise.all([...(ops.put ?? []).map((r) => tx.store.put({ ...r })), ...(ops.delete ?? []).map((k) => tx.store.delete(k)), tx.done]);
    } catch (err) {
      // Let the transaction settle so its own error (a full disk shows there) is the one judged.
      await tx.done.catch(() => undefined);
      const cause = tx.error ?? err;
      if (isQuotaError(cause) || isQuotaError(err)) {
        throw new StoreError('quota', `The browser's storage is full, so ${what} failed (nothing was half written). Delete old results or models, then try again.`);
      }
      throw new StoreError('failed', `IndexedDB failed while ${what}: ${(cause as Error)?.message ?? String(cause)}`);
    }
  }
}
