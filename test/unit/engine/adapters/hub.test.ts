import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, zipAdapter, type AdapterFiles } from '../../../../src/engine/adapters/files';
import { downloadAdapter, locateAdapter, locationLabel, locationName, previewAdapter, type AdapterDownloadProgress } from '../../../../src/engine/adapters/hub';
import { LORA_TARGETS } from '../../../../src/shared/lora';
import { DownloadCache } from '../../../../src/engine/adapters/store';
import { HubError } from '../../../../src/engine/weights/errors';
import { HubServer, TEST_REVISION } from '../../../support/hub-server';
import { freshStore, keysOf, makeAdapter } from '../../../support/adapters';

const FAST = { attempts: 4, baseDelayMs: 1, maxDelayMs: 5 };
const platform = { fetch: globalThis.fetch.bind(globalThis) };

describe('locateAdapter', () => {
  const hub = 'https://hub.example';
  it('reads repository ids, with or without a revision', () => {
    expect(locateAdapter('ChunB1/phi-2_OpenOrca_cot_only', { hubBaseUrl: hub })).toEqual({
      kind: 'folder',
      url: 'https://hub.example/ChunB1/phi-2_OpenOrca_cot_only/resolve/main/',
      repo: 'ChunB1/phi-2_OpenOrca_cot_only',
      revision: 'main',
    });
    expect(locateAdapter(' me/ad@v1.0 ', { hubBaseUrl: `${hub}/` }).url).toBe('https://hub.example/me/ad/resolve/v1.0/');
  });

  it('reads folder, file, page and .zip URLs', () => {
    const folder = locateAdapter('https://huggingface.co/me/ad/resolve/abc123/sub/adapter_config.json');
    expect(folder).toEqual({ kind: 'folder', url: 'https://huggingface.co/me/ad/resolve/abc123/sub/', repo: 'me/ad', revision: 'abc123' });
    expect(locateAdapter('https://huggingface.co/me/ad/tree/main').url).toBe('https://huggingface.co/me/ad/resolve/main/');
    expect(locateAdapter('https://huggingface.co/me/ad/blob/main/adapter_model.safetensors').url).toBe('https://huggingface.co/me/ad/resolve/main/');
    expect(locateAdapter('https://huggingface.co/me/ad').url).toBe('https://huggingface.co/me/ad/resolve/main/');
    expect(locateAdapter('https://files.example/x/my-adapter/')).toEqual({ kind: 'folder', url: 'https://files.example/x/my-adapter/', repo: null, revision: null });
    const zip = locateAdapter('https://files.example/x/adapter.zip?sig=1#frag');
    expect(zip).toEqual({ kind: 'zip', url: 'https://files.example/x/adapter.zip?sig=1', repo: null, revision: null });
    expect(locationLabel(zip)).toBe('adapter.zip');
    expect(locationName(zip)).toBe('adapter');
    expect(locationLabel(locateAdapter('https://huggingface.co/me/ad/resolve/main/x.zip'))).toBe('me/ad: x.zip');
    expect(locationName(locateAdapter('me/ad@v2'))).toBe('ad');
    expect(locationLabel(locateAdapter('me/ad@v2'))).toBe('me/ad@v2');
  });

  it('refuses what is neither, saying what it expected', () => {
    expect(() => locateAdapter('   ')).toThrow(/Enter a Hub repository id/);
    expect(() => locateAdapter('not a repo')).toThrow(/neither a Hub repository id \(owner\/name\) nor a URL/);
    expect(() => locateAdapter('ftp://x/y')).toThrow(/ftp URLs are not downloaded; use an https:\/\/ URL/);
  });
});

describe('adapter downloads from a Hub-like server', () => {
  let dir: string;
  let hub: HubServer;
  let files: AdapterFiles;
  const REPO = 'test/adapter';
  const ZIPS = 'test/zips';

  beforeAll(async () => {
    // Big enough for many 4 kB chunks and for the server's CDN redirect (64 kB).
    files = makeAdapter(5, { r: 8, alpha: 16, dropout: 0, useRslora: false, targets: [...LORA_TARGETS], layers: 'all' }, { hidden: 64, intermediate: 256, layers: 2 });
    dir = mkdtempSync(join(tmpdir(), 'adapter-hub-'));
    writeFileSync(join(dir, ADAPTER_CONFIG), files[ADAPTER_CONFIG]);
    writeFileSync(join(dir, ADAPTER_WEIGHTS), files[ADAPTER_WEIGHTS]);
    const zipDir = mkdtempSync(join(tmpdir(), 'adapter-zip-'));
    writeFileSync(join(zipDir, 'adapter.zip'), zipAdapter(files));
    writeFileSync(join(zipDir, 'broken.zip'), new Uint8Array([1, 2, 3]));
    hub = await HubServer.start({ repos: { [REPO]: dir, [ZIPS]: zipDir } });
    expect(files[ADAPTER_WEIGHTS].length).toBeGreaterThan(65536);
  });

  afterAll(async () => {
    await hub?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const folder = () => locateAdapter(`${REPO}@${TEST_REVISION}`, { hubBaseUrl: hub.url });

  it('previews the config and size, then downloads both files intact', async () => {
    const preview = await previewAdapter(platform, folder());
    expect(preview.settings).toMatchObject({ r: 8, alpha: 16, targets: [...LORA_TARGETS] });
    expect(preview.baseModel).toBe('test/base-model');
    expect(preview.bytes).toBe(files[ADAPTER_WEIGHTS].length);
    const seen: AdapterDownloadProgress[] = [];
    const got = await downloadAdapter(platform, folder(), { onProgress: (p) => seen.push(p), retry: FAST });
    expect(got[ADAPTER_WEIGHTS]).toEqual(files[ADAPTER_WEIGHTS]);
    expect(got[ADAPTER_CONFIG]).toEqual(files[ADAPTER_CONFIG]);
    expect(seen.at(-1)).toMatchObject({ file: ADAPTER_WEIGHTS, received: files[ADAPTER_WEIGHTS].length, total: files[ADAPTER_WEIGHTS].length });
  });

  it('says clearly when the repository or a file is missing', async () => {
    const missing = await previewAdapter(platform, locateAdapter('test/nothing', { hubBaseUrl: hub.url })).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(HubError);
    expect((missing as HubError).code).toBe('not-found');
    expect((missing as Error).message).toMatch(/adapter_config.json was not found at .*test\/nothing\/resolve\/main\/adapter_config.json \(HTTP 404\)/);
    hub.setFaults(ADAPTER_CONFIG, { status: { code: 403, times: 1 } });
    await expect(previewAdapter(platform, folder())).rejects.toThrow(/needs authorisation \(HTTP 403\)/);
  });

  it('continues a dropped connection from the last byte with a Range request', async () => {
    hub.setFaults(ADAPTER_WEIGHTS, { dropAfter: { bytes: 30_000, times: 2 }, serverErrors: 1 });
    const before = hub.requests.length;
    const got = await downloadAdapter(platform, folder(), { retry: FAST });
    expect(got[ADAPTER_WEIGHTS]).toEqual(files[ADAPTER_WEIGHTS]);
    const ranges = hub.requests.slice(before).filter((r) => r.path.includes('/cdn/') && r.range).map((r) => r.range);
    expect(ranges).toEqual(['bytes=30000-', 'bytes=60000-']);
    hub.setFaults(ADAPTER_WEIGHTS, {});
  });

  it('resumes a download cut short (a dropped connection, a reload) from what the cache kept, in whole chunks', async () => {
    const db = await freshStore();
    const cache = new DownloadCache(db.db as never, 4096);
    // The connection drops after 3.5 chunks and the retries give up: the download ends with what arrived kept.
    hub.setFaults(ADAPTER_WEIGHTS, { dropAfter: { bytes: 3 * 4096 + 2048, times: 1 } });
    const cut = await downloadAdapter(platform, folder(), { cache, retry: { ...FAST, attempts: 1 } }).catch((e: unknown) => e);
    expect(cut).toBeInstanceOf(HubError);
    expect((cut as HubError).code).toBe('network');
    const kept = await cache.load(new URL(ADAPTER_WEIGHTS, folder().url).toString());
    expect(kept!.bytes.length).toBe(3 * 4096);
    expect((await cache.list()).map((p) => p.received)).toEqual([3 * 4096]);

    hub.setFaults(ADAPTER_WEIGHTS, {});
    const before = hub.requests.length;
    const notices: string[] = [];
    const got = await downloadAdapter(platform, folder(), { cache, retry: FAST, onProgress: (p) => p.notice && notices.push(p.notice) });
    expect(got[ADAPTER_WEIGHTS]).toEqual(files[ADAPTER_WEIGHTS]);
    const first = hub.requests.slice(before).find((r) => r.path.includes('/cdn/'))!;
    expect(first.range).toBe(`bytes=${kept!.bytes.length}-`);
    expect(notices[0]).toMatch(/Resuming adapter_model.safetensors from \d+ bytes/);
    // Finished: nothing is kept any more.
    expect(await keysOf(db, 'adapters')).toEqual([]);
  });

  it('starts over when the file changed on the server since the stop', async () => {
    const db = await freshStore();
    const cache = new DownloadCache(db.db as never, 4096);
    const url = new URL(ADAPTER_WEIGHTS, folder().url).toString();
    // What an earlier attempt kept: two chunks under the ETag the file had then.
    const old = files[ADAPTER_WEIGHTS];
    let sums = await cache.append(url, { etag: hub.etag(REPO, ADAPTER_WEIGHTS), size: old.length }, 0, old.subarray(0, 4096), []);
    sums = await cache.append(url, { etag: hub.etag(REPO, ADAPTER_WEIGHTS), size: old.length }, 1, old.subarray(4096, 8192), sums);
    hub.setFaults(ADAPTER_WEIGHTS, { changeAfterRequests: 0 });
    const notices: string[] = [];
    const got = await downloadAdapter(platform, folder(), { cache, retry: FAST, onProgress: (p) => p.notice && notices.push(p.notice) });
    expect(got[ADAPTER_WEIGHTS]).toEqual(hub.content(REPO, ADAPTER_WEIGHTS));
    expect(got[ADAPTER_WEIGHTS]).not.toEqual(old);
    expect(notices).toContain('adapter_model.safetensors changed on the server; downloading it from the start.');
    hub.setFaults(ADAPTER_WEIGHTS, {});
  });

  it('reads a .zip of the two files, and says what is wrong with one that is not', async () => {
    const zip = locateAdapter(`${hub.url}/${ZIPS}/resolve/main/adapter.zip`);
    expect(zip.kind).toBe('zip');
    const preview = await previewAdapter(platform, zip);
    expect(preview.settings).toBeNull();
    expect(preview.bytes).toBeGreaterThan(files[ADAPTER_WEIGHTS].length);
    const got = await downloadAdapter(platform, zip, { retry: FAST });
    expect(got[ADAPTER_WEIGHTS]).toEqual(files[ADAPTER_WEIGHTS]);
    await expect(downloadAdapter(platform, locateAdapter(`${hub.url}/${ZIPS}/resolve/main/broken.zip`), { retry: FAST })).rejects.toThrow(/not a readable .zip archive/);
  });
});
