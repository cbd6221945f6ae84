import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LimitedDisk, testPlatform } from '../../../support/idb';
import { StoreError } from '../../../../src/engine/store/errors';
import { WeightStore } from '../../../../src/engine/store/store';
import { HubError, SafetensorsError } from '../../../../src/engine/weights/errors';
import { HubSource, hubFileUrl, parseContentRange } from '../../../../src/engine/weights/hub';
import { PHI2_REPO, PHI2_REVISION } from '../../../../src/shared/hub';
import { importFromHub } from '../../../../src/engine/weights/index';
import type { ImportProgress } from '../../../../src/engine/weights/progress';
import type { RetryPolicy } from '../../../../src/engine/weights/retry';
import { closedPortUrl } from '../../../support/closed-port';
import { HubServer, TEST_REVISION, type FileFaults } from '../../../support/hub-server';
import { FIXTURES, fixtureBytes } from '../../../support/safetensors-fixtures';
import { expectStoredModelMatches } from '../../../support/stored-weights';

const TINY = 'test/tiny-phi';
const GOLDEN = 'test/golden';
const SHARD1 = 'model-00001-of-00002.safetensors';
const SHARD2 = 'model-00002-of-00002.safetensors';
const FAST_RETRY: RetryPolicy = { attempts: 4, baseDelayMs: 5, maxDelayMs: 20 };
/** Small records so that the fixtures span many of them and resumes land mid-tensor. */
const RECORD_BYTES = 64 * 1024;

let hub: HubServer;
beforeAll(async () => {
  hub = await HubServer.start({ repos: { [TINY]: join(FIXTURES, 'tiny-phi'), [GOLDEN]: join(FIXTURES, 'golden') }, seed: 7 });
});
afterAll(() => hub.close());

let disk: LimitedDisk | null = null;
afterEach(() => {
  disk?.uninstall();
  disk = null;
  hub.requests.length = 0;
});

const fetchPlatform = { fetch: globalThis.fetch.bind(globalThis), now: () => performance.now() };
const settings = (repo: string, revision = TEST_REVISION) => ({ repo, revision, baseUrl: hub.url });

async function download(
  repo: string,
  faults: Record<string, FileFaults> = {},
  options: { store?: WeightStore; scheme?: 'int8' | 'f16'; signal?: AbortSignal; onProgress?: (p: ImportProgress) => void; maxRestarts?: number } = {},
) {
  for (const file of [SHARD1, SHARD2, 'config.json', 'model.safetensors.index.json', 'tokenizer.json']) hub.setFaults(file, faults[file] ?? {});
  const store = options.store ?? (await WeightStore.open(testPlatform()));
  const notices: string[] = [];
  const progress: ImportProgress[] = [];
  const manifest = await importFromHub(fetchPlatform, store, settings(repo), {
    scheme: options.scheme,
    retry: FAST_RETRY,
    recordBytes: RECORD_BYTES,
    signal: options.signal,
    maxRestarts: options.maxRestarts,
    onProgress: (p) => {
      progress.push(p);
      if (p.notice) notices.push(p.notice);
      options.onProgress?.(p);
    },
  });
  return { store, manifest, notices, progress };
}

/** The shards as the server holds them now (after any change). */
function served(repo: string): Map<string, Uint8Array> {
  return new Map([SHARD1, SHARD2].map((f) => [f, hub.content(repo, f)]));
}

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the download to fail');
}

/** Requests with a Range that reached the content (redirects repeat the header). */
const rangeRequests = () => hub.requests.filter((r) => r.range !== null && r.status !== 302);

describe('Hub download', () => {
  it('builds resolve URLs and pins microsoft/phi-2 by default', () => {
    expect(PHI2_REPO).toBe('microsoft/phi-2');
    expect(PHI2_REVISION).toBe('ef382358ec9e382308935a992d908de099b64c23');
    expect(hubFileUrl({ repo: PHI2_REPO, revision: PHI2_REVISION, baseUrl: 'https://huggingface.co/' }, 'model-00001-of-00002.safetensors')).toBe(
      'https://huggingface.co/microsoft/phi-2/resolve/ef382358ec9e382308935a992d908de099b64c23/model-00001-of-00002.safetensors',
    );
    expect(parseContentRange('bytes 100-199/1000')).toEqual({ start: 100, end: 199, total: 1000 });
    expect(() => new HubSource(fetchPlatform, { repo: '../etc', revision: 'main', baseUrl: hub.url })).toThrow(/not a Hub repository name/);
  });

  it('downloads, quantises and stores a sharded checkpoint exactly, following redirects', async () => {
    const { store, manifest, progress } = await download(GOLDEN);
    expect(manifest.complete).toBe(true);
    expect(manifest.source).toEqual({ kind: 'hub', ...settings(GOLDEN) });
    expect(manifest.files.map((f) => [f.name, f.size, f.complete])).toEqual([
      [SHARD1, hub.content(GOLDEN, SHARD1).length, true],
      [SHARD2, hub.content(GOLDEN, SHARD2).length, true],
    ]);
    expect(manifest.files[0].etag).toMatch(/^"[0-9a-f]{32}"$/);
    expect(await expectStoredModelMatches(store, manifest.id, served(GOLDEN))).toBe(33);
    // large files went through the CDN redirect; nothing needed a Range
    expect(hub.requests.some((r) => r.path.startsWith('/cdn/test/golden/') && r.status === 200)).toBe(true);
    expect(rangeRequests()).toEqual([]);
    // progress: phases in order (everything stored is read back and verified before "complete"),
    // bytes never go back within a phase, the end is complete
    const phases = [...new Set(progress.map((p) => p.phase))];
    expect(phases).toEqual(['metadata', 'tokenizer', 'weights', 'verifying', 'complete']);
    for (const phase of phases) {
      const overall = progress.filter((p) => p.phase === phase).map((p) => p.overall.bytesDone);
      expect(overall.every((b, i) => i === 0 || b >= overall[i - 1])).toBe(true);
    }
    const last = progress[progress.length - 1];
    expect(last.overall.bytesDone).toBe(last.overall.bytesTotal);
    expect(last.tensorsDone).toBe(33);
    // no tokenizer in this repo: nothing stored, no error
    expect(await store.getTokenizer(manifest.id)).toBeUndefined();
  });

  it('stores the tokenizer files and keeps F16 weights in f16 mode', async () => {
    const { store, manifest } = await download(TINY, {}, { scheme: 'f16' });
    expect(manifest.scheme).toBe('f16');
    expect(manifest.id).toBe(`${TINY}@${TEST_REVISION}:f16`);
    const entries = await store.getTensors(manifest.id);
    expect(entries.find((e) => e.key === 'layers.0.fc1.weight')!.dtype).toBe('f16');
    await expectStoredModelMatches(store, manifest.id, served(TINY));
    const tok = await store.getTokenizer(manifest.id);
    expect(Object.keys(tok!).sort()).toEqual(['tokenizer.json', 'tokenizer_config.json']);
    expect(JSON.parse(tok!['tokenizer_config.json']).tokenizer_class).toBe('CodeGenTokenizer');
  });

  it('resumes with Range after dropped connections, at record boundaries, with the right bytes', async () => {
    const { store, manifest, notices } = await download(TINY, {
      [SHARD1]: { dropAfter: { bytes: 3_000_000, times: 2 } },
      [SHARD2]: { dropAfter: { bytes: 'random', times: 3 } },
    });
    await expectStoredModelMatches(store, manifest.id, served(TINY));
    const ranges = rangeRequests();
    expect(ranges.length).toBeGreaterThanOrEqual(4);
    for (const r of ranges) expect(r.range).toMatch(/^bytes=\d+-$/);
    // each resume starts past what the previous attempt committed, never at 0
    const shard1 = ranges.filter((r) => r.path.endsWith(SHARD1)).map((r) => Number(/=(\d+)-/.exec(r.range!)![1]));
    expect(shard1.length).toBe(2);
    expect(shard1[0]).toBeGreaterThan(2_000_000);
    expect(shard1[0]).toBeLessThanOrEqual(3_000_000);
    expect(notices.some((n) => /connection dropped/.test(n) && /Retrying in/.test(n))).toBe(true);
  });

  it('resumes when the CDN does not expose Content-Range to the page', async () => {
    const { store, manifest } = await download(GOLDEN, { [SHARD1]: { omitContentRange: true, dropAfter: { bytes: 400_000 } } });
    expect(rangeRequests().length).toBe(1);
    await expectStoredModelMatches(store, manifest.id, served(GOLDEN));
  });

  it('sends no header but Range, and that only when resuming', async () => {
    await download(GOLDEN, { [SHARD2]: { dropAfter: { bytes: 200_000 } } });
    const standard = new Set(['host', 'connection', 'accept', 'accept-language', 'accept-encoding', 'sec-fetch-mode', 'user-agent', 'range']);
    for (const r of hub.requests) {
      for (const name of Object.keys(r.headers)) expect(standard.has(name), `${r.path} sent ${name}`).toBe(true);
    }
    expect(rangeRequests().length).toBe(1);
  });

  it('says at the first failure that a server which never answered cannot be reached, and tries only three times', async () => {
    const store = await WeightStore.open(testPlatform());
    const progress: ImportProgress[] = [];
    const baseUrl = await closedPortUrl();
    const err = (await failure(
      importFromHub(fetchPlatform, store, { repo: TINY, revision: TEST_REVISION, baseUrl }, { retry: FAST_RETRY, onProgress: (p) => progress.push(p) }),
    )) as HubError;
    expect(err).toBeInstanceOf(HubError);
    expect(err.code).toBe('unreachable');
    expect(err.message).toMatch(/^Could not reach http:\/\/127\.0\.0\.1:\d+ for config\.json of test\/tiny-phi .*Gave up after 3 attempts\.$/);
    const retries = progress.filter((p) => p.retry).map((p) => p.retry!);
    expect(retries.map((r) => [r.what, r.attempt, r.attempts, r.unreachable])).toEqual([
      ['config.json', 2, 3, true],
      ['config.json', 3, 3, true],
    ]);
    expect(await store.listModels()).toEqual([]);
  });

  it('rides out a dropped connection with the full policy once the server has answered', async () => {
    const { progress } = await download(GOLDEN, { [SHARD2]: { dropAfter: { bytes: 200_000, times: 1 } } });
    const retries = progress.filter((p) => p.retry).map((p) => p.retry!);
    expect(retries.map((r) => [r.what, r.attempt, r.attempts, r.unreachable])).toEqual([[SHARD2, 2, FAST_RETRY.attempts, false]]);
    expect(retries[0].reason).toMatch(/connection dropped/);
  });

  it('retries 5xx and 429 answers with backoff', async () => {
    const { store, manifest, notices } = await download(GOLDEN, {
      'config.json': { serverErrors: 2 },
      [SHARD1]: { status: { code: 503, times: 1 } },
      [SHARD2]: { status: { code: 429, times: 2 } },
    });
    await expectStoredModelMatches(store, manifest.id, served(GOLDEN));
    expect(notices.filter((n) => /Retrying/.test(n)).length).toBe(5);
  });

  it('gives up on a server that keeps failing, with the status', async () => {
    const err = await failure(download(GOLDEN, { [SHARD1]: { serverErrors: 10 } }));
    expect(err).toBeInstanceOf(HubError);
    expect((err as HubError).code).toBe('http');
    expect((err as HubError).status).toBe(500);
    expect(err.message).toMatch(/HTTP 500 .* model-00001-of-00002\.safetensors of test\/golden .*Gave up after 4 attempts/);
    hub.setFaults(SHARD1, {});
  });

  it('explains 404 (repo, revision, file) and 401/403 (gated)', async () => {
    const store = await WeightStore.open(testPlatform());
    const run = (s: ReturnType<typeof settings>) => failure(importFromHub(fetchPlatform, store, s, { retry: FAST_RETRY }));
    let err = (await run(settings('test/nothing'))) as HubError;
    expect(err.code).toBe('not-found');
    expect(err.message).toMatch(/test\/nothing at revision 0123456789abcdef0123456789abcdef01234567 has no config\.json \(HTTP 404\): check the repository name and the revision/);
    err = (await run(settings(GOLDEN, 'no-such-revision'))) as HubError;
    expect(err.code).toBe('not-found');
    hub.setFaults('config.json', { status: { code: 403, times: 1 } });
    err = (await run(settings(GOLDEN))) as HubError;
    expect(err.code).toBe('unauthorized');
    expect(err.status).toBe(403);
    expect(err.message).toMatch(/private or gated .* import them from disk/);
    hub.setFaults('config.json', {});
    hub.setFaults(SHARD2, { status: { code: 404, times: 1 } });
    err = (await run(settings(GOLDEN))) as HubError;
    expect(err.code).toBe('not-found');
    expect(err.message).toMatch(/model-00002-of-00002\.safetensors of test\/golden at revision 0123456789abcdef0123456789abcdef01234567 was not found \(HTTP 404\)/);
    hub.setFaults(SHARD2, {});
  });

  it('refuses a truncated file clearly and stores nothing of it as complete', async () => {
    const store = await WeightStore.open(testPlatform());
    const err = await failure(download(GOLDEN, { [SHARD2]: { truncateBy: 100 } }, { store }));
    expect(err).toBeInstanceOf(SafetensorsError);
    expect((err as SafetensorsError).code).toBe('offsets-out-of-range');
    expect(err.message).toMatch(/model-00002-of-00002\.safetensors/);
    const model = (await store.listModels())[0];
    expect(model.complete).toBe(false);
    expect(model.files.map((f) => f.complete)).toEqual([true, false]);
    const entries = await store.getTensors(model.id);
    expect(entries.filter((e) => e.file === SHARD2).every((e) => !e.complete && e.recordsDone === 0)).toBe(true);
  });

  it('restarts a file that changed between requests and ends with the new version only', async () => {
    const { store, manifest, notices } = await download(TINY, { [SHARD1]: { changeAfterRequests: 1, dropAfter: { bytes: 4_000_000 } } });
    const v2 = hub.content(TINY, SHARD1);
    expect(Buffer.from(v2).equals(Buffer.from(fixtureBytes('tiny-phi', SHARD1)))).toBe(false);
    await expectStoredModelMatches(store, manifest.id, served(TINY));
    expect(notices.some((n) => /changed since its download began \(ETag/.test(n) && /Restarting/.test(n))).toBe(true);
    expect(manifest.files[0].etag).toBe(hub.etag(TINY, SHARD1));
  });

  it('gives up on a file that keeps changing', async () => {
    const err = await failure(download(GOLDEN, { [SHARD1]: { changeAfterRequests: 1, dropAfter: { bytes: 500_000 } } }, { maxRestarts: 0 }));
    expect(err).toBeInstanceOf(HubError);
    expect((err as HubError).code).toBe('changed');
    expect(err.message).toMatch(/kept changing/);
  });

  it('copes with a server that ignores Range: re-reads from the start and checks what was stored', async () => {
    const { store, manifest } = await download(GOLDEN, { [SHARD1]: { ignoreRange: true, dropAfter: { bytes: 600_000 } } });
    await expectStoredModelMatches(store, manifest.id, served(GOLDEN));
    const shard1 = hub.requests.filter((r) => r.path.endsWith(SHARD1) && r.path.startsWith('/cdn'));
    expect(shard1.map((r) => [r.range !== null, r.status])).toEqual([
      [false, 200],
      [true, 200],
    ]);
  });

  it('resumes after the page is closed mid-download (abort, new store on the same database)', async () => {
    const platform = testPlatform();
    const first = await WeightStore.open(platform);
    const stop = new AbortController();
    let records = 0;
    const err = await failure(
      download(TINY, { [SHARD1]: { throttleBytesPerSecond: 20_000_000 } }, {
        store: first,
        signal: stop.signal,
        onProgress: (p) => {
          if (p.file?.name === SHARD1 && p.file.bytesDone > 2_500_000 && !stop.signal.aborted) stop.abort();
          records++;
        },
      }),
    );
    expect(err).toBeInstanceOf(HubError);
    expect((err as HubError).code).toBe('aborted');
    first.close();
    const partial = (await (await WeightStore.open(platform)).listModels())[0];
    expect(partial.complete).toBe(false);
    hub.requests.length = 0;
    // "reload": a new store over the same IndexedDB, the same import started again
    const second = await WeightStore.open(platform);
    const { manifest, notices } = await download(TINY, {}, { store: second });
    expect(manifest.complete).toBe(true);
    expect(notices[0]).toMatch(/Resuming test\/tiny-phi: \d+ of 33 tensors already stored/);
    const shard1 = hub.requests.filter((r) => r.path.endsWith(SHARD1) && r.status !== 302);
    expect(shard1.length).toBe(1);
    expect(Number(/bytes=(\d+)-/.exec(shard1[0].range ?? '')?.[1])).toBeGreaterThan(2_000_000);
    await expectStoredModelMatches(second, manifest.id, served(TINY));
    expect(records).toBeGreaterThan(0);
  });

  it('stops on a full disk with the space needed, and resumes once there is room', async () => {
    disk = new LimitedDisk(4_000_000).install();
    // the estimate is optimistic (as browsers' can be): the up-front check passes, the disk fills mid-way
    const platform = testPlatform(disk.storage(100_000_000));
    const store = await WeightStore.open(platform);
    const err = await failure(download(TINY, {}, { store }));
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).code).toBe('quota');
    expect((err as StoreError).needed).toBeGreaterThan(0);
    // The estimate says there is room: the message says the browser refused anyway, never that more is needed than is free.
    expect(err.message).toMatch(/The browser refused to store more although it reports .* free for this site .*, more than the .* still to store/);
    const model = (await store.listModels())[0];
    const entries = await store.getTensors(model.id);
    expect(entries.some((e) => e.recordsDone > 0)).toBe(true);
    expect(model.complete).toBe(false);
    disk.budget = 100_000_000;
    const { manifest } = await download(TINY, {}, { store });
    expect(manifest.complete).toBe(true);
    await expectStoredModelMatches(store, manifest.id, served(TINY));
  });

  it('refuses to start when the browser reports too little space for the model', async () => {
    disk = new LimitedDisk(500_000); // the golden model needs about 950 kB once quantised
    const store = await WeightStore.open(testPlatform(disk.storage()));
    const err = await failure(download(GOLDEN, {}, { store }));
    expect((err as StoreError).code).toBe('quota');
    expect(hub.requests.some((r) => r.path.includes('safetensors') && !r.path.endsWith('.json'))).toBe(false);
  });

  it('reports rate and time left on a slow connection', async () => {
    const { progress } = await download(GOLDEN, { [SHARD1]: { throttleBytesPerSecond: 2_000_000 } });
    const during = progress.filter((p) => p.file?.name === SHARD1 && p.file.rate > 0);
    expect(during.length).toBeGreaterThan(2);
    const mid = during[Math.floor(during.length / 2)];
    expect(mid.file!.rate).toBeGreaterThan(500_000);
    expect(mid.file!.rate).toBeLessThan(8_000_000);
    expect(mid.file!.etaSeconds).toBeGreaterThan(0);
    expect(mid.overall.etaSeconds).toBeGreaterThan(0);
  });

  it('returns a complete stored model without downloading again', async () => {
    const store = await WeightStore.open(testPlatform());
    await download(GOLDEN, {}, { store });
    hub.requests.length = 0;
    const { manifest } = await download(GOLDEN, {}, { store });
    expect(manifest.complete).toBe(true);
    expect(hub.requests.filter((r) => r.path.includes('.safetensors') && !r.path.endsWith('.json'))).toEqual([]);
  });
});
