import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { strToU8, zipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, adapterWeightsLimit, zipAdapter, type AdapterFiles } from '../../../../src/engine/adapters/files';
import { downloadAdapter, locateAdapter } from '../../../../src/engine/adapters/hub';
import { LORA_TARGETS } from '../../../../src/shared/lora';
import { AdapterError, resolveAdapterConfig, type PeftLoraConfig } from '../../../../src/engine/adapters/peft';
import { DownloadCache } from '../../../../src/engine/adapters/store';
import { unzipAdapter } from '../../../../src/engine/adapters/zip';
import { HubServer, TEST_REVISION } from '../../../support/hub-server';
import { refusal } from '../../../support/refusal';
import { freshStore, keysOf, makeAdapter, SETTINGS, SHAPES } from '../../../support/adapters';

const FAST = { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 };
const platform = { fetch: globalThis.fetch.bind(globalThis) };
const limitFor = (config: PeftLoraConfig) => adapterWeightsLimit(resolveAdapterConfig(config, SHAPES), SHAPES);

describe('adapter .zip archives are unpacked entry by entry, within limits', () => {
  const files = makeAdapter(4);

  it('reads the adapter at the top level or in one folder, inflating nothing else', () => {
    expect(unzipAdapter(zipAdapter(files), limitFor)[ADAPTER_WEIGHTS]).toEqual(files[ADAPTER_WEIGHTS]);
    // A stray entry in a compression method no unzipper has is never touched, so it cannot fail the import.
    const zip = zipSync({ 'run/adapter_config.json': files[ADAPTER_CONFIG], 'run/adapter_model.safetensors': files[ADAPTER_WEIGHTS], 'run/README.md': strToU8('hello') });
    const readme = findLocalHeader(zip, 'run/README.md');
    new DataView(zip.buffer).setUint16(readme + 8, 99, true); // compression method 99 in its local header
    const got = unzipAdapter(zip, limitFor);
    expect(got[ADAPTER_CONFIG]).toEqual(files[ADAPTER_CONFIG]);
    expect(got[ADAPTER_WEIGHTS]).toEqual(files[ADAPTER_WEIGHTS]);
  });

  it('stops inflating weights as soon as they pass what the config allows (a zip bomb)', () => {
    // 16 MB of zeros deflate to about 16 KB: far more than an r-2 adapter of this size can be.
    const bomb = zipSync({ [ADAPTER_CONFIG]: files[ADAPTER_CONFIG], [ADAPTER_WEIGHTS]: new Uint8Array(16 * 2 ** 20) });
    expect(bomb.length).toBeLessThan(100_000);
    const err = refusal(() => unzipAdapter(bomb, limitFor));
    expect(err).toBeInstanceOf(AdapterError);
    const limit = adapterWeightsLimit(SETTINGS, SHAPES);
    expect(err.message).toMatch(new RegExp(`adapter_model\\.safetensors in the archive expands to more than ${limit.toLocaleString('en-US')} bytes \\(the most an adapter with r 2 on these layers can take, in F32\\), so it was not unpacked`));
    // And by ratio even under a generous limit: no more than 64 times the entry's compressed size.
    expect(refusal(() => unzipAdapter(bomb, () => 2 ** 31)).message).toMatch(/expands to more than [\d,]+ bytes \(64 times its [\d,]+ compressed bytes\)/);
  });

  it('caps adapter_config.json inside an archive', () => {
    const zip = zipSync({ [ADAPTER_CONFIG]: new Uint8Array(2 ** 20).fill(0x20), [ADAPTER_WEIGHTS]: files[ADAPTER_WEIGHTS] });
    expect(refusal(() => unzipAdapter(zip, limitFor)).message).toMatch(/adapter_config\.json in the archive expands to more than 65,536 bytes \(a PEFT adapter config is at most 64 KiB\)/);
  });

  it('refuses an archive of two adapters, or of files from different folders, never pairing one config with another weights', () => {
    const other = makeAdapter(9, { ...SETTINGS, r: 1 });
    const two = zipSync({
      'a/adapter_config.json': files[ADAPTER_CONFIG],
      'a/adapter_model.safetensors': files[ADAPTER_WEIGHTS],
      'b/adapter_config.json': other[ADAPTER_CONFIG],
      'b/adapter_model.safetensors': other[ADAPTER_WEIGHTS],
    });
    expect(refusal(() => unzipAdapter(two, limitFor)).message).toMatch(/The archive holds 2 adapters \(in a\/, b\/\); import one at a time/);
    const split = zipSync({ 'a/adapter_config.json': files[ADAPTER_CONFIG], 'b/adapter_model.safetensors': other[ADAPTER_WEIGHTS] });
    expect(refusal(() => unzipAdapter(split, limitFor)).message).toMatch(/a\/adapter_config\.json and b\/adapter_model\.safetensors are in different folders/);
  });
});

/** Offset of an entry's local file header in a zip. */
function findLocalHeader(zip: Uint8Array, name: string): number {
  const target = strToU8(name);
  for (let i = 0; i + 30 < zip.length; i++) {
    if (zip[i] === 0x50 && zip[i + 1] === 0x4b && zip[i + 2] === 3 && zip[i + 3] === 4) {
      const n = zip[i + 26] | (zip[i + 27] << 8);
      if (n === target.length && target.every((b, k) => zip[i + 30 + k] === b)) return i;
    }
  }
  throw new Error(`no ${name}`);
}

describe('downloads are bounded by what the adapter can be', () => {
  let dir: string;
  let hub: HubServer;
  let files: AdapterFiles;
  const REPO = 'test/oversized';
  const BIG_CONFIG = 'test/big-config';

  beforeAll(async () => {
    // Real weights of r 8 on every target, under a config that says r 1 on q_proj: the file is far larger than that config allows.
    files = makeAdapter(6, { r: 8, alpha: 16, dropout: 0, useRslora: false, targets: [...LORA_TARGETS], layers: 'all' }, { hidden: 64, intermediate: 256, layers: 2 });
    dir = mkdtempSync(join(tmpdir(), 'adapter-limits-'));
    writeFileSync(join(dir, ADAPTER_CONFIG), JSON.stringify({ r: 1, lora_alpha: 2, target_modules: ['q_proj'] }));
    writeFileSync(join(dir, ADAPTER_WEIGHTS), files[ADAPTER_WEIGHTS]);
    const bigConfig = mkdtempSync(join(tmpdir(), 'adapter-big-config-'));
    writeFileSync(join(bigConfig, ADAPTER_CONFIG), `{"r": 1, "target_modules": ["q_proj"], "pad": "${'x'.repeat(2 * 2 ** 20)}"}`);
    writeFileSync(join(bigConfig, ADAPTER_WEIGHTS), files[ADAPTER_WEIGHTS]);
    hub = await HubServer.start({ repos: { [REPO]: dir, [BIG_CONFIG]: bigConfig } });
  });

  afterAll(async () => {
    await hub?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const shapes = { hidden: 64, intermediate: 256, layers: 2 };
  const limit = () => adapterWeightsLimit({ r: 1, alpha: 2, dropout: 0, useRslora: false, targets: ['q_proj'], layers: 'all' }, shapes);

  it('refuses weights whose Content-Length is past the limit before reading them, keeping nothing', async () => {
    const db = await freshStore();
    const cache = new DownloadCache(db.db as never, 4096);
    const err = await downloadAdapter(platform, locateAdapter(`${REPO}@${TEST_REVISION}`, { hubBaseUrl: hub.url }), { cache, retry: FAST, shapes }).then(() => new Error('expected a refusal'), (e: unknown) => e as Error);
    expect(err).toBeInstanceOf(AdapterError);
    expect(err.message).toMatch(
      new RegExp(`adapter_model\\.safetensors is ${files[ADAPTER_WEIGHTS].length.toLocaleString('en-US')} bytes, more than the ${limit().toLocaleString('en-US')} it can be \\(the most an adapter with r 1 on these layers can take, in F32\\)`),
    );
    expect(await keysOf(db, 'adapters')).toEqual([]);
  });

  it('counts the bytes received where no Content-Length is sent', async () => {
    hub.setFaults(ADAPTER_WEIGHTS, { omitContentLength: true });
    const err = await downloadAdapter(platform, locateAdapter(`${REPO}@${TEST_REVISION}`, { hubBaseUrl: hub.url }), { retry: FAST, shapes }).then(() => new Error('expected a refusal'), (e: unknown) => e as Error);
    hub.setFaults(ADAPTER_WEIGHTS, {});
    expect(err).toBeInstanceOf(AdapterError);
    expect(err.message).toMatch(new RegExp(`adapter_model\\.safetensors is more than ${limit().toLocaleString('en-US')} bytes`));
  });

  it('reads adapter_config.json with a small cap', async () => {
    const err = await downloadAdapter(platform, locateAdapter(BIG_CONFIG, { hubBaseUrl: hub.url }), { retry: FAST, shapes }).then(() => new Error('expected a refusal'), (e: unknown) => e as Error);
    expect(err).toBeInstanceOf(AdapterError);
    expect(err.message).toMatch(/adapter_config\.json is 2,097,\d+ bytes; a PEFT adapter config is a few kilobytes \(at most 64 KiB accepted\)/);
  });
});

describe('a cancelled download leaves nothing behind', () => {
  let dir: string;
  let hub: HubServer;

  beforeAll(async () => {
    const files = makeAdapter(5, { r: 8, alpha: 16, dropout: 0, useRslora: false, targets: [...LORA_TARGETS], layers: 'all' }, { hidden: 64, intermediate: 256, layers: 2 });
    dir = mkdtempSync(join(tmpdir(), 'adapter-cancel-'));
    writeFileSync(join(dir, ADAPTER_CONFIG), files[ADAPTER_CONFIG]);
    writeFileSync(join(dir, ADAPTER_WEIGHTS), files[ADAPTER_WEIGHTS]);
    hub = await HubServer.start({ repos: { 'test/adapter': dir }, faults: { [ADAPTER_WEIGHTS]: { throttleBytesPerSecond: 200_000 } } });
  });

  afterAll(async () => {
    await hub?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('clears what arrived when the user stops it, and the list of unfinished downloads is empty', async () => {
    const db = await freshStore();
    const cache = new DownloadCache(db.db as never, 4096);
    const controller = new AbortController();
    const stopped = await downloadAdapter(platform, locateAdapter('test/adapter', { hubBaseUrl: hub.url }), {
      cache,
      retry: FAST,
      signal: controller.signal,
      shapes: { hidden: 64, intermediate: 256, layers: 2 },
      onProgress: (p) => {
        if (p.file === ADAPTER_WEIGHTS && p.received > 3 * 4096 + 100) controller.abort();
      },
    }).then(() => new Error('expected a refusal'), (e: unknown) => e as Error);
    expect(stopped.name).toBe('AbortError');
    expect(stopped.message).toMatch(/nothing of it was kept/);
    expect(await cache.list()).toEqual([]);
    expect(await keysOf(db, 'adapters')).toEqual([]);
  });

  it('lists unfinished downloads and clears them, one or all', async () => {
    const db = await freshStore();
    const cache = new DownloadCache(db.db as never, 4096);
    await cache.append('https://a.example/x.zip', { etag: null, size: 9000 }, 0, new Uint8Array(4096), []);
    await cache.append('https://b.example/y/adapter_model.safetensors', { etag: '"e"', size: null }, 0, new Uint8Array(4096), []);
    expect((await cache.list()).map((p) => p.url).sort()).toEqual(['https://a.example/x.zip', 'https://b.example/y/adapter_model.safetensors']);
    await cache.clear('https://a.example/x.zip');
    expect((await cache.list()).map((p) => p.url)).toEqual(['https://b.example/y/adapter_model.safetensors']);
    await cache.clearAll();
    expect(await cache.list()).toEqual([]);
    expect(await keysOf(db, 'adapters')).toEqual([]);
  });
});
