import type { CachedHubPage, HubRowsCache } from '../store/hub-datasets-cache';
import type { InstructionExample } from '../../shared/template';
import { MAX_JSON_DEPTH, nestsDeeperThan } from '../untrusted-json';
import { sleep as retrySleep } from '../weights/retry';

/**
 * Public Hugging Face datasets, read page by page through the Hub's dataset viewer API (datasets-server):
 *   GET {base}/rows?dataset=&config=&split=&offset=&length=            (length <= 100)
 *   GET {base}/filter?dataset=&config=&split=&where=&offset=&length=   (same response, filtered rows)
 *   -> {features, rows: [{row_idx, row, truncated_cells}], num_rows_total, partial?}
 *
 * 429 and 5xx are retried with exponential backoff; a 429 (or 503) Retry-After header, in seconds or as an
 * HTTP date, is honoured. A server that has not answered once in this load (offline, a wrong address) gets
 * only a few quick tries, and the first failure says so. Other errors stop with a message that says what to
 * do. Pages are cached in IndexedDB (store/hub-datasets-cache.ts) when a cache is given.
 */

export const DATASETS_SERVER_URL = 'https://datasets-server.huggingface.co';
/** The API's maximum page length. */
export const MAX_PAGE_LENGTH = 100;

export interface HubRowsQuery {
  /** "owner/name" on the Hub. */
  dataset: string;
  config?: string;
  split?: string;
  /** A /filter condition (comparison predicates, AND/OR/NOT); absent: plain /rows. */
  where?: string;
  /** First row to read (a /filter offset counts filtered rows). Default 0. */
  offset?: number;
  /** Rows per request, 1..100. Default 100. */
  pageLength?: number;
  /** Stop once this many rows are kept. Default: read to the end. */
  maxRows?: number;
  /** Client-side filter, applied after the server's. */
  keep?: (row: Record<string, unknown>) => boolean;
  /** Columns that must arrive whole: rows where the API truncated one of them are skipped and counted. */
  requiredColumns?: readonly string[];
}

export interface HubRowsProgress {
  /** Rows read from the API (or cache) so far, before client-side filtering. */
  scannedRows: number;
  keptRows: number;
  /** num_rows_total of the split (or of the filter's result); null before the first page. */
  totalRows: number | null;
  pagesFetched: number;
  pagesFromCache: number;
  /** Set while waiting to retry: how long, and why. */
  retryInMs?: number;
  retryReason?: string;
  /** With a retry: the attempt about to be made (2 for the first retry) and the most there will be. */
  attempt?: number;
  attempts?: number;
  /** With a retry: nothing has answered in this load, so the server cannot be reached at all. */
  unreachable?: boolean;
}

export interface HubRowsDeps {
  /** The Platform's fetch. */
  fetch: typeof fetch;
  baseUrl?: string;
  /** A Hugging Face access token, for gated datasets. */
  token?: string;
  cache?: HubRowsCache;
  signal?: AbortSignal;
  onProgress?: (progress: HubRowsProgress) => void;
  /** Injectable for tests; defaults to a setTimeout that stops on abort. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Wall-clock milliseconds (for Retry-After dates). Defaults to Date.now. */
  now?: () => number;
  maxRetries?: number;
  /** Retries while the server has not answered once in this load (default 2: three quick tries in all). */
  unreachableRetries?: number;
  /** Backoff: baseDelayMs * 2^attempt, at most maxDelayMs. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** A Retry-After longer than this fails the load instead of waiting. */
  maxRetryAfterMs?: number;
}

export interface HubRow {
  /** The row's index in the split. */
  rowIdx: number;
  row: Record<string, unknown>;
}

export interface HubRowsResult {
  rows: HubRow[];
  features: unknown[];
  totalRows: number;
  scannedRows: number;
  /** Rows skipped because a required column arrived truncated. */
  skippedTruncated: number;
  /** Rows skipped because they nest deeper than any real row (see untrusted-json.ts). */
  skippedTooDeep: number;
  /** Offset to continue from, or null when the split was read to its end. */
  nextOffset: number | null;
  pagesFetched: number;
  pagesFromCache: number;
  /** /filter searched only part of a very large dataset. */
  partial: boolean;
}

export class HubRowsError extends Error {
  override name = 'HubRowsError';
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** No answer from the dataset server at all (offline, a wrong address, a server that is down or refuses this page). */
export class HubUnreachableError extends HubRowsError {
  override name = 'HubUnreachableError';
}

interface RowsPage {
  features: unknown[];
  rows: Array<{ row_idx: number; row: Record<string, unknown>; truncated_cells: string[]; too_deep?: boolean }>;
  num_rows_total: number;
  partial: boolean;
}

/** Reads rows page by page until maxRows are kept or the split ends. */
export async function loadHubRows(query: HubRowsQuery, deps: HubRowsDeps): Promise<HubRowsResult> {
  const config = query.config ?? 'default';
  const split = query.split ?? 'train';
  const length = query.pageLength ?? MAX_PAGE_LENGTH;
  if (!/^[\w.-]+(\/[\w.-]+)?$/.test(query.dataset)) throw new HubRowsError(`"${query.dataset}" is not a Hub dataset name (owner/name).`);
  if (!Number.isInteger(length) || length < 1 || length > MAX_PAGE_LENGTH) {
    throw new HubRowsError(`pageLength must be an integer in 1..${MAX_PAGE_LENGTH}, got ${length}`);
  }
  const maxRows = query.maxRows ?? Infinity;
  if (maxRows !== Infinity && (!Number.isInteger(maxRows) || maxRows < 1)) throw new HubRowsError(`maxRows must be a positive integer, got ${maxRows}`);
  let offset = query.offset ?? 0;
  if (!Number.isInteger(offset) || offset < 0) throw new HubRowsError(`offset must be a non-negative integer, got ${offset}`);

  const progress: HubRowsProgress = { scannedRows: 0, keptRows: 0, totalRows: null, pagesFetched: 0, pagesFromCache: 0 };
  const answered = { yes: false };
  const result: HubRowsResult = {
    rows: [],
    features: [],
    totalRows: 0,
    scannedRows: 0,
    skippedTruncated: 0,
    skippedTooDeep: 0,
    nextOffset: offset,
    pagesFetched: 0,
    pagesFromCache: 0,
    partial: false,
  };
  const required = query.requiredColumns ?? [];
  for (;;) {
    deps.signal?.throwIfAborted();
    const page = await getPage({ dataset: query.dataset, config, split, view: query.where ?? '', offset }, length, query.where, deps, progress, answered);
    result.features = page.features;
    result.totalRows = page.num_rows_total;
    result.partial ||= page.partial;
    progress.totalRows = page.num_rows_total;
    let consumed = 0;
    for (const r of page.rows) {
      if (result.rows.length >= maxRows) break;
      consumed++;
      progress.scannedRows++;
      if (r.too_deep) {
        result.skippedTooDeep++;
        continue;
      }
      if (required.some((c) => r.truncated_cells.includes(c))) {
        result.skippedTruncated++;
        continue;
      }
      if (query.keep && !query.keep(r.row)) continue;
      result.rows.push({ rowIdx: r.row_idx, row: r.row });
      progress.keptRows++;
    }
    offset += consumed;
    result.scannedRows = progress.scannedRows;
    result.pagesFetched = progress.pagesFetched;
    result.pagesFromCache = progress.pagesFromCache;
    deps.onProgress?.({ ...progress });
    const ended = page.rows.length === 0 || offset >= page.num_rows_total;
    if (ended) {
      result.nextOffset = null;
      return result;
    }
    if (result.rows.length >= maxRows) {
      result.nextOffset = offset;
      return result;
    }
  }
}

async function getPage(
  key: { dataset: string; config: string; split: string; view: string; offset: number },
  length: number,
  where: string | undefined,
  deps: HubRowsDeps,
  progress: HubRowsProgress,
  answered: { yes: boolean },
): Promise<RowsPage> {
  const cached = await deps.cache?.get(key);
  if (cached && cached.length === length) {
    progress.pagesFromCache++;
    return { features: cached.features, rows: cached.rows, num_rows_total: cached.numRowsTotal, partial: cached.partial };
  }
  const params = new URLSearchParams({ dataset: key.dataset, config: key.config, split: key.split });
  if (where !== undefined) params.set('where', where);
  params.set('offset', String(key.offset));
  params.set('length', String(length));
  const url = `${(deps.baseUrl ?? DATASETS_SERVER_URL).replace(/\/$/, '')}/${where === undefined ? 'rows' : 'filter'}?${params}`;
  const page = await fetchPage(url, key, deps, progress, answered);
  progress.pagesFetched++;
  if (deps.cache) {
    const entry: CachedHubPage = {
      ...key,
      length,
      features: page.features,
      rows: page.rows,
      numRowsTotal: page.num_rows_total,
      partial: page.partial,
      storedAt: (deps.now ?? Date.now)(),
    };
    await deps.cache.put(entry);
  }
  return page;
}

async function fetchPage(
  url: string,
  key: { dataset: string; config: string; split: string },
  deps: HubRowsDeps,
  progress: HubRowsProgress,
  answered: { yes: boolean },
): Promise<RowsPage> {
  const maxRetries = deps.maxRetries ?? 6;
  const unreachableRetries = Math.min(maxRetries, deps.unreachableRetries ?? 2);
  const base = deps.baseDelayMs ?? 1000;
  const maxDelay = deps.maxDelayMs ?? 30_000;
  const maxRetryAfter = deps.maxRetryAfterMs ?? 120_000;
  const sleep = deps.sleep ?? ((ms: number, signal?: AbortSignal) => retrySleep(ms, signal, () => signal!.reason));
  const headers: Record<string, string> = { accept: 'application/json' };
  if (deps.token) headers.authorization = `Bearer ${deps.token}`;
  const what = `${key.dataset} (config "${key.config}", split "${key.split}")`;
  for (let attempt = 0; ; attempt++) {
    let response: Response | null = null;
    let failure = '';
    try {
      response = await deps.fetch(url, { headers, signal: deps.signal });
    } catch (err) {
      if (deps.signal?.aborted) throw deps.signal.reason ?? err;
      failure = `network error: ${(err as Error).message}`;
    }
    let waitMs = Math.min(maxDelay, base * 2 ** attempt);
    if (response) answered.yes = true;
    const unreachable = !response && !answered.yes;
    if (response) {
      if (response.ok) return parsePage(await response.text(), url);
      const detail = await errorDetail(response);
      if (response.status !== 429 && response.status < 500) throw clientError(response.status, detail, what);
      failure = response.status === 429 ? 'rate limited by the Hub (HTTP 429)' : `the Hub answered HTTP ${response.status}${detail ? `: ${detail}` : ''}`;
      const retryAfter = parseRetryAfter(response.headers.get('retry-after'), (deps.now ?? Date.now)());
      if (retryAfter !== null) {
        if (retryAfter > maxRetryAfter) {
          throw new HubRowsError(`${failure}; it asks to wait ${Math.ceil(retryAfter / 1000)} s before retrying. Try again later.`, response.status);
        }
        waitMs = retryAfter;
      }
    }
    const retries = unreachable ? unreachableRetries : maxRetries;
    if (attempt >= retries) {
      if (unreachable) {
        const host = new URL(url).host;
        throw new HubUnreachableError(
          `The Hub's dataset server (${host}) cannot be reached: ${failure} (${retries + 1} attempts). ` +
            'Check the network connection (or the API base URL under "Advanced"), then load again; or upload the dataset as a file.',
        );
      }
      throw new HubRowsError(`Could not read ${what} after ${retries + 1} attempts: ${failure}.`, response?.status);
    }
    deps.onProgress?.({ ...progress, retryInMs: waitMs, retryReason: failure, attempt: attempt + 2, attempts: retries + 1, unreachable });
    await sleep(waitMs, deps.signal);
  }
}

function clientError(status: number, detail: string, what: string): HubRowsError {
  const tail = detail ? ` (the Hub says: ${detail})` : '';
  if (status === 401 || status === 403) {
    return new HubRowsError(
      `${what} needs authentication: it is gated or private. Accept its terms on huggingface.co and give an access token${tail}.`,
      status,
    );
  }
  if (status === 404) return new HubRowsError(`${what} was not found on the Hub: check the dataset name, config and split${tail}.`, status);
  return new HubRowsError(`The Hub rejected the request for ${what} with HTTP ${status}${tail}.`, status);
}

async function errorDetail(response: Response): Promise<string> {
  try {
    const text = await response.text();
    try {
      const body = JSON.parse(text) as { error?: unknown };
      if (typeof body.error === 'string') return body.error;
    } catch {
      // not JSON: fall back to the text itself
    }
    return text.trim().slice(0, 200);
  } catch {
    return '';
  }
}

function parsePage(text: string, url: string): RowsPage {
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text);
  } catch {
    throw new HubRowsError(`The Hub's answer to ${url} is not JSON.`);
  }
  const rows = body.rows;
  if (!Array.isArray(rows) || typeof body.num_rows_total !== 'number') {
    throw new HubRowsError(`The Hub's answer to ${url} has no rows/num_rows_total: the API may have changed.`);
  }
  for (const r of rows as Array<Record<string, unknown>>) {
    if (typeof r?.row_idx !== 'number' || typeof r.row !== 'object' || r.row === null) {
      throw new HubRowsError(`The Hub's answer to ${url} has a row without row_idx or row.`);
    }
    if (!Array.isArray(r.truncated_cells)) r.truncated_cells = [];
    // A row nested past what every recursive consumer takes (the cache's structured clone, the worker
    // boundary) is dropped here, before anything recurses into it, and counted; the rest of the page stays.
    if (nestsDeeperThan(r.row, MAX_JSON_DEPTH)) {
      r.row = {};
      r.too_deep = true;
    }
  }
  return {
    features: Array.isArray(body.features) ? body.features : [],
    rows: rows as RowsPage['rows'],
    num_rows_total: body.num_rows_total,
    partial: body.partial === true,
  };
}

/** Retry-After in milliseconds: delta-seconds or an HTTP date (RFC 9110); null when absent or unreadable. */
export function parseRetryAfter(value: string | null, nowMs: number): number | null {
  if (value === null) return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const date = Date.parse(v);
  if (Number.isNaN(date)) return null;
  return Math.max(0, date - nowMs);
}

/**
 * A /filter condition for "column starts with prefix": a half-open string range, since the API's conditions
 * are comparisons only. Quotes in the prefix are doubled, as the API's SQL syntax requires.
 */
export function prefixWhere(column: string, prefix: string): string {
  if (prefix === '') throw new Error('prefixWhere needs a non-empty prefix');
  const upper = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
  const q = (s: string) => `'${s.replace(/'/g, "''")}'`;
  return `"${column.replace(/"/g, '""')}">=${q(prefix)} AND "${column.replace(/"/g, '""')}"<${q(upper)}`;
}

/** A Hub dataset the app knows how to turn into instruction examples. */
export interface HubDatasetPreset {
  query: Omit<HubRowsQuery, 'offset' | 'maxRows'>;
  toExample(row: Record<string, unknown>): InstructionExample;
  description: string;
}

/** OpenOrca's chain-of-thought rows (ids "cot.*"), the paper's instruction-tuning data. */
export const OPEN_ORCA_COT: HubDatasetPreset = {
  description: 'Open-Orca/OpenOrca, chain-of-thought rows (id starting with "cot"): the paper\'s instruction-tuning data',
  query: {
    dataset: 'Open-Orca/OpenOrca',
    config: 'default',
    split: 'train',
    keep: (row) => typeof row.id === 'string' && row.id.startsWith('cot'),
    requiredColumns: ['id', 'question', 'response'],
  },
  toExample: (row) => ({ question: String(row.question), response: String(row.response) }),
};

/** tasksource's symbol-tuning prompts (inputs: a few-shot prompt with symbol labels; targets: the symbol). */
export const ICL_SYMBOL_TUNING_INSTRUCT: HubDatasetPreset = {
  description: "tasksource/icl-symbol-tuning-instruct: the paper's symbol-tuning data",
  query: {
    dataset: 'tasksource/icl-symbol-tuning-instruct',
    config: 'default',
    split: 'train',
    requiredColumns: ['inputs', 'targets'],
  },
  toExample: (row) => ({ question: String(row.inputs), response: String(row.targets) }),
};
