import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openHubDatasetsCache } from '../../../../src/engine/store/hub-datasets-cache';
import {
  type HubRowsDeps,
  type HubRowsProgress,
  HubRowsError,
  HubUnreachableError,
  ICL_SYMBOL_TUNING_INSTRUCT,
  loadHubRows,
  OPEN_ORCA_COT,
  parseRetryAfter,
  prefixWhere,
} from '../../../../src/engine/data/hub-datasets';
import { type HfDatasetsServer, startHfDatasetsServer } from '../../../support/hf-datasets-server';
import { closedPortUrl } from '../../../support/closed-port';

// 250 OpenOrca-like rows: every 5th is chain-of-thought.
const orca = Array.from({ length: 250 }, (_, i) => ({
  id: `${i % 5 === 0 ? 'cot' : i % 5 === 1 ? 'niv' : 'flan'}.${i}`,
  system_prompt: '',
  question: `question ${i}`,
  response: `response ${i}`,
}));
const symbolRows = Array.from({ length: 30 }, (_, i) => ({
  task: 'sst2',
  inputs: i === 7 ? `long ${'x'.repeat(500)}` : `Input: text ${i}\nSymbol:`,
  targets: i % 2 ? 'Zujib' : 'Kocec',
  symbols: ['Zujib', 'Kocec'],
}));

/** Row 2 holds a cell nested 100 lists deep: past what the app takes (64), shallow enough for the test server. */
const deepRows = Array.from({ length: 5 }, (_, i) => {
  let cell: unknown = i;
  if (i === 2) for (let d = 0; d < 100; d++) cell = [cell];
  return { question: `question ${i}`, response: `response ${i}`, extra: cell };
});

let server: HfDatasetsServer;
beforeAll(async () => {
  server = await startHfDatasetsServer([
    { dataset: 'Open-Orca/OpenOrca', config: 'default', split: 'train', rows: orca },
    { dataset: 'tasksource/icl-symbol-tuning-instruct', config: 'default', split: 'train', rows: symbolRows, maxCellChars: 200 },
    { dataset: 'acme/gated', config: 'default', split: 'train', rows: orca.slice(0, 3), token: 'hf_secret' },
    { dataset: 'acme/deep', config: 'default', split: 'train', rows: deepRows },
  ]);
});
afterAll(() => server.close());
beforeEach(() => {
  server.requests.length = 0;
  server.script.length = 0;
  server.rateLimit = null;
});

/** Deps that never really sleep: the waits are recorded instead. */
function deps(extra: Partial<HubRowsDeps> = {}): HubRowsDeps & { slept: number[]; progress: HubRowsProgress[] } {
  const slept: number[] = [];
  const progress: HubRowsProgress[] = [];
  return {
    fetch: globalThis.fetch,
    baseUrl: server.baseUrl,
    sleep: async (ms) => void slept.push(ms),
    onProgress: (p) => progress.push(p),
    slept,
    progress,
    ...extra,
  };
}

describe('Hub dataset rows', () => {
  it('reads a split page by page with progress', async () => {
    const d = deps();
    const result = await loadHubRows({ dataset: 'Open-Orca/OpenOrca' }, d);
    expect(result.rows.length).toBe(250);
    expect(result.rows.map((r) => r.rowIdx)).toEqual(orca.map((_, i) => i));
    expect(result.rows[42].row).toEqual(orca[42]);
    expect(result.nextOffset).toBeNull();
    expect(result.totalRows).toBe(250);
    expect(server.requests.map((r) => [r.path, r.params.offset, r.params.length])).toEqual([
      ['/rows', '0', '100'],
      ['/rows', '100', '100'],
      ['/rows', '200', '100'],
    ]);
    expect(server.requests[0].params).toMatchObject({ dataset: 'Open-Orca/OpenOrca', config: 'default', split: 'train' });
    expect(d.progress.map((p) => [p.scannedRows, p.keptRows, p.totalRows])).toEqual([
      [100, 100, 250],
      [200, 200, 250],
      [250, 250, 250],
    ]);
  });

  it("keeps OpenOrca's chain-of-thought rows up to a limit, and resumes where it stopped", async () => {
    const first = await loadHubRows({ ...OPEN_ORCA_COT.query, maxRows: 25, pageLength: 40 }, deps());
    expect(first.rows.length).toBe(25);
    expect(first.rows.every((r) => String(r.row.id).startsWith('cot.'))).toBe(true);
    expect(first.rows[24].rowIdx).toBe(120);
    expect(first.nextOffset).toBe(121);
    expect(first.scannedRows).toBe(121);
    const rest = await loadHubRows({ ...OPEN_ORCA_COT.query, offset: first.nextOffset!, pageLength: 40 }, deps());
    expect(rest.rows.map((r) => r.rowIdx)).toEqual(Array.from({ length: 25 }, (_, k) => 125 + 5 * k));
    expect(rest.nextOffset).toBeNull();
    expect(OPEN_ORCA_COT.toExample(first.rows[0].row)).toEqual({ question: 'question 0', response: 'response 0' });
  });

  it('filters on the server with /filter and a prefix condition', async () => {
    expect(prefixWhere('id', 'cot')).toBe(`"id">='cot' AND "id"<'cou'`);
    expect(prefixWhere('a"b', "it's")).toBe(`"a""b">='it''s' AND "a""b"<'it''t'`);
    const result = await loadHubRows({ dataset: 'Open-Orca/OpenOrca', where: prefixWhere('id', 'cot'), pageLength: 30 }, deps());
    expect(result.rows.length).toBe(50);
    expect(result.totalRows).toBe(50);
    expect(server.requests.map((r) => [r.path, r.params.offset])).toEqual([
      ['/filter', '0'],
      ['/filter', '30'],
    ]);
    expect(server.requests[0].params.where).toBe(`"id">='cot' AND "id"<'cou'`);
  });

  it('skips rows whose required cells arrived truncated, and counts them', async () => {
    const result = await loadHubRows(ICL_SYMBOL_TUNING_INSTRUCT.query, deps());
    expect(result.rows.length).toBe(29);
    expect(result.skippedTruncated).toBe(1);
    expect(result.rows.map((r) => r.rowIdx)).not.toContain(7);
    expect(ICL_SYMBOL_TUNING_INSTRUCT.toExample(result.rows[1].row)).toEqual({ question: 'Input: text 1\nSymbol:', response: 'Zujib' });
  });

  it('skips a row nested deeper than any real row, counts it, keeps the rest of its page and caches the page', async () => {
    const cache = await openHubDatasetsCache(new IDBFactory());
    for (const from of ['the Hub', 'the cache']) {
      const result = await loadHubRows({ dataset: 'acme/deep' }, deps({ cache }));
      expect(result.rows.map((r) => r.rowIdx), from).toEqual([0, 1, 3, 4]);
      expect(result.skippedTooDeep, from).toBe(1);
    }
    expect(server.requests).toHaveLength(1);
    cache.close();
  });

  it('waits as long as a 429 Retry-After asks, in seconds or as a date', async () => {
    server.script.push({ status: 429, retryAfter: '3' });
    const now = Date.parse('2025-01-01T00:00:00Z');
    server.script.push({ status: 429, retryAfter: 'Wed, 01 Jan 2025 00:00:07 GMT' });
    const d = deps({ now: () => now });
    const result = await loadHubRows({ dataset: 'Open-Orca/OpenOrca', maxRows: 10 }, d);
    expect(result.rows.length).toBe(10);
    expect(d.slept).toEqual([3000, 7000]);
    expect(server.requests.map((r) => r.status)).toEqual([429, 429, 200]);
    expect(d.progress[0]).toMatchObject({ retryInMs: 3000, retryReason: 'rate limited by the Hub (HTTP 429)' });
  });

  it('rides through a rate limiter that refuses every other request', async () => {
    server.rateLimit = { every: 2, retryAfter: '1' };
    const d = deps();
    const result = await loadHubRows({ dataset: 'Open-Orca/OpenOrca', pageLength: 50 }, d);
    expect(result.rows.length).toBe(250);
    expect(d.slept.length).toBeGreaterThan(2);
    expect(d.slept.every((ms) => ms === 1000)).toBe(true);
    expect(server.requests.filter((r) => r.status === 429).length).toBe(d.slept.length);
  });

  it('backs off exponentially on 5xx and network errors, then succeeds', async () => {
    server.script.push({ status: 503 }, { status: 500 }, { status: 0, hangUp: true }, { status: 502 });
    const d = deps({ baseDelayMs: 100, maxDelayMs: 500 });
    const result = await loadHubRows({ dataset: 'Open-Orca/OpenOrca', maxRows: 5 }, d);
    expect(result.rows.length).toBe(5);
    expect(d.slept).toEqual([100, 200, 400, 500]);
    expect(d.progress.slice(0, 4).map((p) => p.retryReason)).toEqual([
      'the Hub answered HTTP 503: scripted 503',
      'the Hub answered HTTP 500: scripted 500',
      expect.stringMatching(/^network error: /),
      'the Hub answered HTTP 502: scripted 502',
    ]);
  });

  it('says at once that a server which never answered cannot be reached, and tries only a few times', async () => {
    const url = await closedPortUrl();
    const d = deps({ baseUrl: url });
    const err = await loadHubRows({ dataset: 'Open-Orca/OpenOrca' }, d).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HubUnreachableError);
    expect((err as Error).message).toMatch(/^The Hub's dataset server \(127\.0\.0\.1:\d+\) cannot be reached: network error: .* \(3 attempts\)\. .*upload the dataset as a file\.$/);
    // The first failure already says so: every retry report is marked, and counts.
    expect(d.progress.map((p) => [p.unreachable, p.attempt, p.attempts])).toEqual([
      [true, 2, 3],
      [true, 3, 3],
    ]);
    expect(d.slept).toEqual([1000, 2000]);
  });

  it('keeps the full patience for a server that has answered in this load', async () => {
    server.script.push({ status: 503 }, { status: 0, hangUp: true }, { status: 0, hangUp: true });
    const d = deps({ baseDelayMs: 10, maxDelayMs: 50 });
    const result = await loadHubRows({ dataset: 'Open-Orca/OpenOrca', maxRows: 5 }, d);
    expect(result.rows.length).toBe(5);
    expect(d.progress.slice(0, 3).map((p) => [p.unreachable, p.attempt, p.attempts])).toEqual([
      [false, 2, 7],
      [false, 3, 7],
      [false, 4, 7],
    ]);
  });

  it('gives up after maxRetries with the last failure, or at once on a very long Retry-After', async () => {
    server.script.push({ status: 500 }, { status: 500 }, { status: 500 });
    await expect(loadHubRows({ dataset: 'Open-Orca/OpenOrca' }, deps({ maxRetries: 2 }))).rejects.toThrow(
      'Could not read Open-Orca/OpenOrca (config "default", split "train") after 3 attempts: the Hub answered HTTP 500: scripted 500.',
    );
    server.script.length = 0;
    server.script.push({ status: 429, retryAfter: '3600' });
    await expect(loadHubRows({ dataset: 'Open-Orca/OpenOrca' }, deps())).rejects.toThrow(/asks to wait 3600 s before retrying/);
  });

  it('explains 404, gated datasets and bad requests without retrying', async () => {
    const d = deps();
    await expect(loadHubRows({ dataset: 'nobody/nothing' }, d)).rejects.toThrow(/nobody\/nothing .* was not found on the Hub: check the dataset name, config and split/);
    await expect(loadHubRows({ dataset: 'Open-Orca/OpenOrca', split: 'test' }, d)).rejects.toThrow(/split "test"\) was not found/);
    const gated = loadHubRows({ dataset: 'acme/gated' }, d);
    await expect(gated).rejects.toThrow(/needs authentication: it is gated or private.*access token/);
    await expect(gated).rejects.toMatchObject({ status: 401 });
    expect(d.slept).toEqual([]);
    const withToken = await loadHubRows({ dataset: 'acme/gated' }, deps({ token: 'hf_secret' }));
    expect(withToken.rows.length).toBe(3);
    expect(server.requests.at(-1)!.authorization).toBe('Bearer hf_secret');
    server.script.push({ status: 400, body: '{"error": "Parameter \'where\' is invalid"}' });
    await expect(loadHubRows({ dataset: 'Open-Orca/OpenOrca', where: 'x' }, d)).rejects.toThrow(
      /rejected the request .* with HTTP 400 \(the Hub says: Parameter 'where' is invalid\)/,
    );
  });

  it('checks its own arguments and the shape of the answers', async () => {
    await expect(loadHubRows({ dataset: 'Open-Orca/OpenOrca', pageLength: 101 }, deps())).rejects.toThrow(/pageLength must be an integer in 1..100/);
    await expect(loadHubRows({ dataset: 'bad name' }, deps())).rejects.toThrow(HubRowsError);
    await expect(loadHubRows({ dataset: 'a/b', maxRows: 0 }, deps())).rejects.toThrow(/maxRows/);
    server.script.push({ status: 200, body: '{"rows": "nope"}' });
    await expect(loadHubRows({ dataset: 'Open-Orca/OpenOrca' }, deps())).rejects.toThrow(/has no rows\/num_rows_total/);
    server.script.push({ status: 200, body: '<html>' });
    await expect(loadHubRows({ dataset: 'Open-Orca/OpenOrca' }, deps())).rejects.toThrow(/is not JSON/);
  });

  it('stops when aborted', async () => {
    const controller = new AbortController();
    server.script.push({ status: 503 });
    const d = deps({
      signal: controller.signal,
      sleep: async () => {
        controller.abort(new Error('user cancelled'));
      },
    });
    await expect(loadHubRows({ dataset: 'Open-Orca/OpenOrca' }, d)).rejects.toThrow('user cancelled');
  });

  it('parses Retry-After', () => {
    expect(parseRetryAfter('120', 0)).toBe(120_000);
    expect(parseRetryAfter('Thu, 01 Jan 1970 00:00:05 GMT', 1000)).toBe(4000);
    expect(parseRetryAfter('Thu, 01 Jan 1970 00:00:05 GMT', 9000)).toBe(0);
    expect(parseRetryAfter('soon', 0)).toBeNull();
    expect(parseRetryAfter(null, 0)).toBeNull();
  });
});

describe('Hub rows cache in IndexedDB', () => {
  it('serves pages it has seen without asking the Hub again, per page length and view', async () => {
    const cache = await openHubDatasetsCache(new IDBFactory());
    const first = await loadHubRows({ dataset: 'Open-Orca/OpenOrca', pageLength: 100 }, deps({ cache }));
    expect(first.pagesFetched).toBe(3);
    server.requests.length = 0;
    const again = await loadHubRows({ dataset: 'Open-Orca/OpenOrca', pageLength: 100 }, deps({ cache }));
    expect(again.rows).toEqual(first.rows);
    expect([again.pagesFetched, again.pagesFromCache]).toEqual([0, 3]);
    expect(server.requests).toEqual([]);
    // Another page length or a filter is another set of pages.
    await loadHubRows({ dataset: 'Open-Orca/OpenOrca', pageLength: 50, maxRows: 10 }, deps({ cache }));
    await loadHubRows({ dataset: 'Open-Orca/OpenOrca', where: prefixWhere('id', 'cot'), maxRows: 10 }, deps({ cache }));
    expect(server.requests.map((r) => r.path)).toEqual(['/rows', '/filter']);
    cache.close();
  });

  it('survives reopening and forgets one dataset or all', async () => {
    const factory = new IDBFactory();
    let cache = await openHubDatasetsCache(factory);
    await loadHubRows({ dataset: 'Open-Orca/OpenOrca', maxRows: 10 }, deps({ cache }));
    await loadHubRows({ dataset: 'tasksource/icl-symbol-tuning-instruct' }, deps({ cache }));
    cache.close();
    cache = await openHubDatasetsCache(factory);
    const key = { dataset: 'Open-Orca/OpenOrca', config: 'default', split: 'train', view: '', offset: 0 };
    expect((await cache.get(key))!.rows.length).toBe(100);
    await cache.clear('Open-Orca/OpenOrca');
    expect(await cache.get(key)).toBeUndefined();
    const other = { dataset: 'tasksource/icl-symbol-tuning-instruct', config: 'default', split: 'train', view: '', offset: 0 };
    expect(await cache.get(other)).toBeDefined();
    await cache.clear();
    expect(await cache.get(other)).toBeUndefined();
    cache.close();
  });
});
