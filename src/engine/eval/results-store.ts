import { StoreError, isQuotaError } from '../store/errors';
import { STORES } from '../store/schema';
import type { WeightStore } from '../store/store';
import { rankAccuracy } from './candidates';
import type { RunnerSettings } from './prepare';
import {
  accuracyTable,
  countItem,
  emptyCounts,
  type AccuracyRow,
  type EvalItemResult,
  type EvalRunResult,
  type EvalSettings,
  type HandScore,
  HAND_SCORES,
  resultsFromJson,
  resultsToCsv,
  resultsToJson,
  upgradeItem,
  type VerdictCounts,
} from './results';
import type { RunFailure } from './run';
import type { ThroughputRates } from './throughput';

/**
 * Evaluation results kept between visits, in the `results` object store of the app's database
 * ("phi2-lora", see store/schema.ts; reached through session.store().db). Each run is:
 *
 *   "run/<id>"             { id, summary }   what lists and tables need: labels, settings, status, counts
 *                                            per dataset and format under every verdict; a few KB
 *   "items/<id>/<000000>"  { id, items }     the items, one record per batch as it finished (prompt,
 *                                            generation, target, verdicts, log-likelihoods)
 *   "reviews/<id>"         { id, reviews }   hand reviews: item id -> score and where the item counts
 *
 * and a request being run (or interrupted) has "job/<group id>" (evaluation.ts) to resume from. Items
 * are appended while a run goes (with its summary, in one transaction), so a reload, a crash or a full
 * disk loses at most the batch in flight. Listing reads only summaries (a key range over "run/"); a
 * run's items are read when it is opened. Results of the first version kept all items in one record,
 * "items/<id>", and summaries without the verdict counts: both are read, and such a summary is rebuilt
 * from its items once.
 */

export type RunStatus = 'running' | 'complete' | 'cancelled' | 'failed';

export interface StoredRunSummary extends VerdictCounts {
  /** 2 for summaries with every verdict's counts. */
  version: 2;
  id: string;
  /** Runs made by one request (the base model and adapters on the same items) share it. */
  groupId: string;
  /** Label of the model: "<model id> (int8)". */
  model: string;
  /** The stored model's id, or null for imported results. */
  modelId: string | null;
  adapter: string | null;
  /** The paper's model this run stands for ("phi-2", "flan-phi-2"...), for its deltas; null if none. */
  paperModel: string | null;
  seed: number;
  /** EvalSettings, plus the runner's options for runs made here. */
  settings: EvalSettings & Partial<RunnerSettings>;
  /** What was run: "paper", "paper (5 per dataset and format)", or the suites of a custom run. */
  suite: string;
  /** ISO 8601. */
  startedAt: string;
  /** ISO 8601: when the run last saved items or said it is alive (a 'running' run gone quiet was interrupted). */
  updatedAt: string;
  durationMs: number;
  /** Items saved (total is the same number). */
  itemCount: number;
  /** Items the run was asked to do (more than itemCount until it completes). */
  plannedCount: number;
  status: RunStatus;
  /** Why a failed run stopped: the item and the message. */
  error?: string;
  failure?: RunFailure;
  /** Counts per (suite, dataset, format), with "all" rows per (suite, format). */
  cells: AccuracyRow[];
  /** Rank classification over the items that have candidate log-likelihoods (whatever decided the verdict). */
  rank: { correct: number; total: number };
  /** Measured on this GPU during the run. */
  rates?: Partial<ThroughputRates>;
  promptTokens?: number;
  generatedTokens?: number;
  /** Item records written so far (the next one's number). */
  chunks: number;
}

export interface StoredRun extends StoredRunSummary {
  items: EvalItemResult[];
}

/** What a run records besides its items when it begins. */
export interface RunRecordInfo {
  groupId: string;
  modelId: string | null;
  paperModel?: string | null;
  plannedCount: number;
}

/** What changes as a run goes, saved with each batch of items. */
export interface RunProgressInfo {
  durationMs: number;
  rates?: Partial<ThroughputRates>;
  promptTokens?: number;
  generatedTokens?: number;
}

/** A review of one item, kept with where it counts (its cell) so summaries update without the items. */
interface ReviewEntry {
  score: HandScore;
  suite: string;
  dataset: string;
  format: string;
}

const RUN = 'run/';
const ITEMS = 'items/';
const REVIEWS = 'reviews/';
const JOB = 'job/';
/** Above every character an id contains, so [prefix, prefix + HIGH] spans all keys under a prefix. */
const HIGH = '\uffff';

type Header = Omit<EvalRunResult, 'items'>;

type AnyRecord = { id: string } & Record<string, unknown>;

const chunkKey = (id: string, n: number) => `${ITEMS}${id}/${String(n).padStart(6, '0')}`;

/** A run's summary with no items yet. */
export function beginSummary(run: Header, id: string, info: RunRecordInfo, now: string): StoredRunSummary {
  return {
    version: 2,
    id,
    groupId: info.groupId,
    model: run.model,
    modelId: info.modelId,
    adapter: run.adapter,
    paperModel: info.paperModel ?? null,
    seed: run.seed,
    settings: run.settings,
    suite: run.suite,
    startedAt: run.startedAt,
    updatedAt: now,
    durationMs: run.durationMs,
    itemCount: 0,
    plannedCount: info.plannedCount,
    status: 'running',
    ...emptyCounts(),
    cells: [],
    rank: { correct: 0, total: 0 },
    chunks: 0,
  };
}

/** Adds items to a summary's counts and cells (in place). */
function addItems(summary: StoredRunSummary, items: readonly EvalItemResult[]): void {
  const merged = accuracyTable([{ ...summary, items: [...items] }]);
  for (const row of merged) {
    const cell = summary.cells.find((c) => c.suite === row.suite && c.dataset === row.dataset && c.format === row.format);
    if (!cell) {
      summary.cells.push(row);
      continue;
    }
    for (const key of Object.keys(emptyCounts()) as Array<keyof VerdictCounts>) cell[key] += row[key];
    cell.accuracy = cell.correct / cell.total;
  }
  // Cells first seen now go in the order accuracyTable keeps: datasets, then the "all" rows.
  summary.cells.sort((a, b) => Number(a.dataset === 'all') - Number(b.dataset === 'all'));
  for (const item of items) countItem(summary, item);
  summary.itemCount += items.length;
  const rank = rankAccuracy(items);
  summary.rank = { correct: summary.rank.correct + rank.correct, total: summary.rank.total + rank.total };
}

/** Sets a summary's hand-review counts (totals and cells) from its reviews (in place). */
function applyReviews(summary: StoredRunSummary, reviews: Record<string, ReviewEntry>): void {
  summary.reviewed = 0;
  summary.handScore = 0;
  for (const cell of summary.cells) [cell.reviewed, cell.handScore] = [0, 0];
  for (const r of Object.values(reviews)) {
    summary.reviewed++;
    summary.handScore += r.score;
    for (const cell of summary.cells) {
      if (cell.suite === r.suite && cell.format === r.format && (cell.dataset === r.dataset || cell.dataset === 'all')) {
        cell.reviewed++;
        cell.handScore += r.score;
      }
    }
  }
}

/** A stored run as EvalRunResult (what the CSV and JSON exports and accuracy tables take), with its record fields. */
export function toRunResult(run: StoredRun): EvalRunResult & { id: string; modelId: string | null; status: RunStatus; paperModel: string | null } {
  return {
    id: run.id,
    model: run.model,
    modelId: run.modelId,
    adapter: run.adapter,
    paperModel: run.paperModel,
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
  constructor(
    private readonly store: Pick<WeightStore, 'db'>,
    /** ISO 8601 wall-clock time (tests pass their own). */
    private readonly clock: () => string = () => new Date().toISOString(),
  ) {}

  private get db() {
    return this.store.db;
  }

  /** Starts a run: its summary, status 'running', no items yet. */
  async begin(run: Header, info: RunRecordInfo): Promise<StoredRunSummary> {
    const summary = beginSummary(run, crypto.randomUUID(), info, this.clock());
    await this.write(`starting the results of ${label(run)}`, { put: [{ id: RUN + summary.id, summary }] });
    return summary;
  }

  /** Saves a batch of finished items and the run's progress, in one transaction. */
  async append(id: string, items: readonly EvalItemResult[], progress: RunProgressInfo): Promise<StoredRunSummary> {
    return this.update(id, `saving ${items.length} finished item${items.length === 1 ? '' : 's'}`, (summary) => {
      const put: AnyRecord[] = [];
      if (items.length > 0) {
        put.push({ id: chunkKey(id, summary.chunks), items: [...items] });
        summary.chunks++;
        addItems(summary, items);
      }
      Object.assign(summary, progress);
      return put;
    });
  }

  /** Marks a run as alive (a run whose last sign of life is old was interrupted: evaluation.ts). */
  async heartbeat(id: string): Promise<void> {
    await this.update(id, 'noting that a run is alive', () => []);
  }

  /** Ends a run: complete, cancelled or failed (with why). */
  async finish(id: string, status: Exclude<RunStatus, 'running'>, detail: { error?: string; failure?: RunFailure } = {}): Promise<StoredRunSummary> {
    return this.update(id, 'ending a run', (summary) => {
      summary.status = status;
      delete summary.error;
      delete summary.failure;
      if (detail.error !== undefined) summary.error = detail.error;
      if (detail.failure !== undefined) summary.failure = detail.failure;
      return [];
    });
  }

  /** A whole run at once (imports): its items, hand reviews and final status in one transaction. */
  async save(run: EvalRunResult, info: RunRecordInfo & { status: Exclude<RunStatus, 'running'>; error?: string }): Promise<StoredRunSummary> {
    const summary = beginSummary(run, crypto.randomUUID(), info, this.clock());
    const items = run.items.map(({ review: _review, ...item }) => item);
    addItems(summary, items);
    summary.chunks = 1;
    summary.status = info.status;
    if (info.error !== undefined) summary.error = info.error;
    const reviews: Record<string, ReviewEntry> = {};
    for (const item of run.items) if (item.review !== undefined) reviews[item.id] = { score: item.review, suite: item.suite, dataset: item.dataset, format: item.format };
    applyReviews(summary, reviews);
    const records: AnyRecord[] = [
      { id: RUN + summary.id, summary },
      { id: chunkKey(summary.id, 0), items },
    ];
    if (Object.keys(reviews).length > 0) records.push({ id: REVIEWS + summary.id, reviews });
    await this.write(`saving the results of ${label(run)}`, { put: records });
    return summary;
  }

  /** Every run's summary, newest first; summaries of the first version are rebuilt from their items once. */
  async list(): Promise<StoredRunSummary[]> {
    const records = (await this.read('listing saved results', () => this.db.getAll(STORES.results, IDBKeyRange.bound(RUN, RUN + HIGH)))) as unknown as Array<{
      summary: StoredRunSummary;
    }>;
    const summaries: StoredRunSummary[] = [];
    for (const { summary } of records) summaries.push(summary.version === 2 ? summary : await this.upgrade(summary));
    return summaries.sort((a, b) => (a.startedAt < b.startedAt ? 1 : a.startedAt > b.startedAt ? -1 : 0));
  }

  async summary(id: string): Promise<StoredRunSummary> {
    const record = (await this.read(`reading results ${id}`, () => this.db.get(STORES.results, RUN + id))) as unknown as { summary: StoredRunSummary } | undefined;
    if (!record) throw new StoreError('missing', `No saved evaluation "${id}": it may have been deleted in another tab.`);
    return record.summary.version === 2 ? record.summary : this.upgrade(record.summary);
  }

  async get(id: string): Promise<StoredRun> {
    const summary = await this.summary(id);
    return { ...summary, items: await this.items(summary) };
  }

  /** Sets (or, with null, removes) the hand review of one item; returns the run's new summary. */
  async review(id: string, itemId: string, score: HandScore | null): Promise<StoredRunSummary> {
    if (score !== null && !HAND_SCORES.includes(score)) throw new StoreError('failed', `A hand review is 1 (right), 0.5 (half) or 0 (wrong), not ${String(score)}.`);
    const items = score === null ? [] : await this.items(await this.summary(id));
    const item = items.find((i) => i.id === itemId);
    if (score !== null && !item) throw new StoreError('missing', `The saved evaluation "${id}" has no item "${itemId}".`);
    return this.update(id, `saving the review of ${itemId}`, async (summary, tx) => {
      const record = (await tx.store.get(REVIEWS + id)) as unknown as { reviews: Record<string, ReviewEntry> } | undefined;
      const reviews = { ...(record?.reviews ?? {}) };
      if (score === null) delete reviews[itemId];
      else reviews[itemId] = { score, suite: item!.suite, dataset: item!.dataset, format: item!.format };
      applyReviews(summary, reviews);
      return [{ id: REVIEWS + id, reviews }];
    }, false);
  }

  async delete(id: string): Promise<void> {
    await this.write(`deleting results ${id}`, {
      delete: [RUN + id, ITEMS + id, REVIEWS + id, IDBKeyRange.bound(`${ITEMS}${id}/`, `${ITEMS}${id}/${HIGH}`)],
    });
  }

  /** One CSV row per item of the given runs (results.ts RESULT_CSV_COLUMNS), hand reviews included. */
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
      const extra = run as Partial<{ modelId: string | null; status: RunStatus; paperModel: string | null }>;
      saved.push(
        await this.save(run, {
          groupId,
          modelId: extra.modelId ?? null,
          paperModel: extra.paperModel ?? null,
          plannedCount: run.items.length,
          status: extra.status === 'cancelled' || extra.status === 'failed' ? extra.status : 'complete',
        }),
      );
    }
    return saved;
  }

  /** Keeps what a request needs to be resumed (evaluation.ts), under its group id. */
  async putJob<T extends object>(groupId: string, job: T): Promise<void> {
    await this.write('saving an evaluation to resume', { put: [{ id: JOB + groupId, job }] });
  }

  async getJob<T>(groupId: string): Promise<T | null> {
    const record = (await this.read('reading an evaluation to resume', () => this.db.get(STORES.results, JOB + groupId))) as unknown as { job: T } | undefined;
    return record?.job ?? null;
  }

  async listJobs<T>(): Promise<Array<{ groupId: string; job: T }>> {
    const records = (await this.read('listing evaluations to resume', () => this.db.getAll(STORES.results, IDBKeyRange.bound(JOB, JOB + HIGH)))) as unknown as Array<{
      id: string;
      job: T;
    }>;
    return records.map((r) => ({ groupId: r.id.slice(JOB.length), job: r.job }));
  }

  async deleteJob(groupId: string): Promise<void> {
    await this.write('forgetting an evaluation to resume', { delete: [JOB + groupId] });
  }

  /** A run's items in order, with their hand reviews. */
  private async items(summary: StoredRunSummary): Promise<EvalItemResult[]> {
    const id = summary.id;
    const [legacy, chunks, reviews] = (await this.read(`reading the items of ${id}`, () =>
      Promise.all([
        this.db.get(STORES.results, ITEMS + id),
        this.db.getAll(STORES.results, IDBKeyRange.bound(`${ITEMS}${id}/`, `${ITEMS}${id}/${HIGH}`)),
        this.db.get(STORES.results, REVIEWS + id),
      ]),
    )) as unknown as [{ items: EvalItemResult[] } | undefined, Array<{ items: EvalItemResult[] }>, { reviews: Record<string, ReviewEntry> } | undefined];
    const items = [...(legacy?.items ?? []), ...chunks.flatMap((c) => c.items)];
    if (items.length !== summary.itemCount) {
      throw new StoreError('corrupt', `The saved evaluation "${id}" has ${items.length} of its ${summary.itemCount} items; delete it and run it again.`);
    }
    const review = reviews?.reviews ?? {};
    return items.map((item) => {
      const out = upgradeItem(item, summary.settings.scoring);
      const r = review[item.id];
      return r === undefined ? out : { ...out, review: r.score };
    });
  }

  /** A summary of the first version, rebuilt from its items and saved. */
  private async upgrade(old: StoredRunSummary): Promise<StoredRunSummary> {
    const base = { ...old, version: 2 as const, itemCount: old.itemCount, chunks: 0, updatedAt: old.updatedAt ?? old.startedAt, paperModel: old.paperModel ?? null };
    const items = await this.items(base);
    const summary: StoredRunSummary = { ...base, ...emptyCounts(), itemCount: 0, cells: [], rank: { correct: 0, total: 0 } };
    addItems(summary, items);
    await this.write(`updating the saved results of ${label(old)}`, { put: [{ id: RUN + summary.id, summary }] });
    return summary;
  }

  private async runs(ids: readonly string[]): Promise<EvalRunResult[]> {
    if (ids.length === 0) throw new StoreError('missing', 'Choose at least one saved evaluation to export.');
    return Promise.all(ids.map(async (id) => toRunResult(await this.get(id))));
  }

  private async read<T>(what: string, op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      if (err instanceof StoreError) throw err;
      throw new StoreError('failed', `IndexedDB failed while ${what}: ${(err as Error)?.message ?? String(err)}`);
    }
  }

  /**
   * Reads a run's summary, lets `change` edit it (and name records to put), and writes it back with
   * those records in one readwrite transaction; `touch` marks the run alive.
   */
  private async update(
    id: string,
    what: string,
    change: (summary: StoredRunSummary, tx: ResultsTx) => AnyRecord[] | Promise<AnyRecord[]>,
    touch = true,
  ): Promise<StoredRunSummary> {
    let out: StoredRunSummary | null = null;
    await this.transact(what, async (tx) => {
      const record = (await tx.store.get(RUN + id)) as unknown as { summary: StoredRunSummary } | undefined;
      if (!record) throw new StoreError('missing', `No saved evaluation "${id}": it may have been deleted in another tab.`);
      const summary = { ...record.summary, cells: record.summary.cells.map((c) => ({ ...c })) };
      const put = await change(summary, tx);
      if (touch) summary.updatedAt = this.clock();
      await Promise.all([...put, { id: RUN + id, summary }].map((r) => tx.store.put(r as never)));
      out = summary;
    });
    return out!;
  }

  private write(what: string, ops: { put?: AnyRecord[]; delete?: Array<string | IDBKeyRange> }): Promise<void> {
    return this.transact(what, (tx) => Promise.all([...(ops.put ?? []).map((r) => tx.store.put({ ...r } as never)), ...(ops.delete ?? []).map((k) => tx.store.delete(k))]));
  }

  /** One readwrite transaction: all of its writes happen or none; a full disk is said so. */
  private async transact(what: string, body: (tx: ResultsTx) => Promise<unknown>): Promise<void> {
    let tx: ResultsTx;
    try {
      tx = this.db.transaction(STORES.results, 'readwrite') as unknown as ResultsTx;
    } catch (err) {
      throw new StoreError('failed', `IndexedDB failed while ${what}: ${(err as Error)?.message ?? String(err)}`);
    }
    try {
      await Promise.all([body(tx), tx.done]);
    } catch (err) {
      try {
        tx.abort();
      } catch {
        // already finished or aborted
      }
      // Let the transaction settle so its own error (a full disk shows there) is the one judged.
      await tx.done.catch(() => undefined);
      if (err instanceof StoreError) throw err;
      const cause = tx.error ?? err;
      if (isQuotaError(cause) || isQuotaError(err)) {
        throw new StoreError('quota', `The browser's storage is full, so ${what} failed (nothing was half written). Delete old results or models, then try again.`);
      }
      throw new StoreError('failed', `IndexedDB failed while ${what}: ${(cause as Error)?.message ?? String(cause)}`);
    }
  }
}

/** The one kind of transaction this store opens: read-write over `results`. */
interface ResultsTx {
  store: { get(key: string): Promise<unknown>; put(value: never): Promise<unknown>; delete(key: string | IDBKeyRange): Promise<unknown> };
  done: Promise<void>;
  error: DOMException | null;
  abort(): void;
}

function label(run: { model: string; adapter: string | null }): string {
  return `${run.model}${run.adapter ? ` + ${run.adapter}` : ''}`;
}
