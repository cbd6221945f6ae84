import { afterEach, describe, expect, it } from 'vitest';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS } from '../../../../src/engine/adapters/files';
import { AdapterError } from '../../../../src/engine/adapters/peft';
import { AdapterStore, DownloadCache, type AdapterStore as Store } from '../../../../src/engine/adapters/store';
import { writeChunks } from '../../../../src/engine/store/chunks';
import { STORES } from '../../../../src/engine/store/schema';
import { StoreError } from '../../../../src/engine/store/errors';
import { CheckpointStore } from '../../../../src/engine/train/checkpoints';
import type { TrainCheckpoint } from '../../../../src/engine/train/trainer';
import { randomArray, rng } from '../../../support/compare';
import { LimitedDisk } from '../../../support/idb';
import { freshStore, keysOf, makeAdapter, SETTINGS } from '../../../support/adapters';

let disk: LimitedDisk | null = null;
afterEach(() => {
  disk?.uninstall();
  disk = null;
});

async function adapterStore(chunkBytes = 1000): Promise<{ store: Store; db: Awaited<ReturnType<typeof freshStore>> }> {
  const db = await freshStore();
  return { store: new AdapterStore(db.db as never, chunkBytes), db };
}

describe('AdapterStore', () => {
  it('keeps an adapter in chunks and gives back the very same files', async () => {
    const { store, db } = await adapterStore(1000);
    const files = makeAdapter(3);
    expect(files[ADAPTER_WEIGHTS].length).toBeGreaterThan(2000);
    const info = await store.put(files, { name: '  My adapter  ', origin: { kind: 'upload', files: ['a.zip'] }, now: 1234 });
    expect(info).toMatchObject({ id: 'my-adapter', name: 'My adapter', baseModel: 'test/base-model', dtype: 'F32', createdAt: 1234, bytes: files[ADAPTER_WEIGHTS].length });
    expect(info.settings).toMatchObject({ r: 2, alpha: 4, targets: SETTINGS.targets, layers: 'all' });
    // 3 targets x 2 layers, each r x (in + out): q/v 2 x (8 + 8), fc1 2 x (8 + 16).
    expect(info.parameterCount).toBe(2 * (2 * 16 + 2 * 16 + 2 * 24));
    expect(info.checksums.length).toBe(Math.ceil(files[ADAPTER_WEIGHTS].length / 1000));
    const back = await store.files(info.id);
    expect(back[ADAPTER_WEIGHTS]).toEqual(files[ADAPTER_WEIGHTS]);
    expect(new TextDecoder().decode(back[ADAPTER_CONFIG])).toBe(new TextDecoder().decode(files[ADAPTER_CONFIG]));
    expect((await store.list()).map((a) => a.id)).toEqual(['my-adapter']);
    expect((await keysOf(db, 'adapters')).filter((k) => k.startsWith('adapter-bytes/')).length).toBe(info.checksums.length);
  });

  it('makes readable unique ids and lists newest first', async () => {
    const { store } = await adapterStore();
    const a = await store.put(makeAdapter(1), { name: 'Phi-2 / OpenOrca CoT', origin: { kind: 'upload', files: [] }, now: 1 });
    const b = await store.put(makeAdapter(2), { name: 'Phi-2 / OpenOrca CoT', origin: { kind: 'upload', files: [] }, now: 2 });
    const c = await store.put(makeAdapter(3), { name: '***', origin: { kind: 'upload', files: [] }, now: 3 });
    expect([a.id, b.id, c.id]).toEqual(['phi-2-openorca-cot', 'phi-2-openorca-cot-2', 'adapter']);
    expect(await store.newId('phi-2 openorca cot', ['phi-2-openorca-cot-3'])).toBe('phi-2-openorca-cot-4');
    expect((await store.list()).map((x) => x.id)).toEqual(['adapter', 'phi-2-openorca-cot-2', 'phi-2-openorca-cot']);
  });

  it('renames, and deletes an adapter with all its chunks and no other', async () => {
    const { store, db } = await adapterStore(700);
    const a = await store.put(makeAdapter(1), { name: 'a', origin: { kind: 'upload', files: [] } });
    // "a-2"'s chunk keys share the prefix "adapter-bytes/a" with a's: deleting "a" must not touch them.
    const b = await store.put(makeAdapter(2), { name: 'a', origin: { kind: 'upload', files: [] } });
    expect(b.id).toBe('a-2');
    expect((await store.rename(a.id, 'renamed')).name).toBe('renamed');
    await expect(store.rename(a.id, '   ')).rejects.toThrow(/Give the adapter a name/);
    await store.delete(a.id);
    expect((await store.list()).map((x) => x.id)).toEqual(['a-2']);
    expect((await keysOf(db, 'adapters')).every((k) => k.includes('a-2'))).toBe(true);
    expect((await store.files('a-2'))[ADAPTER_WEIGHTS]).toEqual(makeAdapter(2)[ADAPTER_WEIGHTS]);
    await expect(store.get(a.id)).rejects.toThrow(/No stored adapter "a"/);
  });

  it('refuses files that are not a LoRA adapter, saying why', async () => {
    const { store } = await adapterStore();
    const files = makeAdapter(1);
    const notJson = { ...files, [ADAPTER_CONFIG]: new TextEncoder().encode('{ nope') };
    await expect(store.put(notJson, { name: 'x', origin: { kind: 'upload', files: [] } })).rejects.toThrow(/adapter_config.json is not valid JSON/);
    const prefix = { ...files, [ADAPTER_CONFIG]: new TextEncoder().encode(JSON.stringify({ peft_type: 'PREFIX_TUNING' })) };
    await expect(store.put(prefix, { name: 'x', origin: { kind: 'upload', files: [] } })).rejects.toThrow(AdapterError);
    const truncated = { ...files, [ADAPTER_WEIGHTS]: files[ADAPTER_WEIGHTS].subarray(0, 100) };
    await expect(store.put(truncated, { name: 'x', origin: { kind: 'upload', files: [] } })).rejects.toThrow(/adapter_model.safetensors/);
    expect(await store.list()).toEqual([]);
  });

  it('finds a damaged chunk by its CRC-32', async () => {
    const { store, db } = await adapterStore(1000);
    const info = await store.put(makeAdapter(1), { name: 'x', origin: { kind: 'upload', files: [] } });
    const key = (await keysOf(db, 'adapters')).find((k) => k.startsWith('adapter-bytes/x/'))!;
    const record = (await db.db.get('adapters', key)) as unknown as { id: string; data: ArrayBuffer };
    new Uint8Array(record.data)[10] ^= 1;
    await db.db.put('adapters', record as never);
    await expect(store.files(info.id)).rejects.toThrow(/Part 1 of adapter "x" is damaged \(CRC-32 mismatch\)/);
  });

  it('on a full disk stores nothing and says how much was needed', async () => {
    const { store, db } = await adapterStore(1000);
    disk = new LimitedDisk(1500).install();
    const error = await store.put(makeAdapter(1), { name: 'big', origin: { kind: 'upload', files: [] } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe('quota');
    expect((error as Error).message).toMatch(/Browser storage is full: saving adapter "big" \(part 2\) needs/);
    disk.uninstall();
    expect(await store.list()).toEqual([]);
    expect(await keysOf(db, 'adapters')).toEqual([]);
  });
});

function checkpoint(step: number, floats: number, seed: number, optimizer: 'adamw' | 'adamw-8bit' = 'adamw'): TrainCheckpoint {
  const random = rng(seed);
  const params = randomArray(floats, random);
  const blocks = Math.ceil(floats / 256);
  const codes = () => Uint8Array.from({ length: Math.ceil(floats / 4) * 4 }, () => Math.floor(random() * 256));
  return {
    version: 2,
    config: {
      lora: SETTINGS,
      schedule: { kind: 'cosine', lr: 1e-3, warmupSteps: 1, totalSteps: 10 },
      batchSize: 2,
      gradAccumulation: 2,
      maxLength: 64,
      weightDecay: 0,
      maxGradNorm: 1,
      residDropout: 0.1,
      seed: 7,
      checkpointEvery: 2,
      maxNonFiniteSteps: 5,
      optimizer: optimizer === 'adamw' ? { kind: 'adamw' } : { kind: 'adamw-8bit', blockSize: 256 },
    },
    step,
    position: { epoch: 1, index: step * 3 },
    params,
    optimizer:
      optimizer === 'adamw'
        ? { kind: 'adamw', expAvg: randomArray(floats, random, 1e-3), expAvgSq: randomArray(floats, random, 1e-6, 1e-6) }
        : { kind: 'adamw-8bit', blockSize: 256, expAvg: codes(), expAvgSq: codes(), absmax: randomArray(2 * blocks, random, 1e-3, 1e-3) },
    nonFiniteRun: 0,
    history: Array.from({ length: step }, (_, i) => ({ step: i + 1, loss: i === 0 ? NaN : 3 - i / 10, gradNorm: 1, lr: 1e-3, skipped: i === 0 })),
    elapsedMs: 1000 * step,
  };
}

describe('CheckpointStore', () => {
  it('saves every part of the run state and gives it back exactly', async () => {
    const db = await freshStore();
    const store = new CheckpointStore<{ plan: string }>(db.db as never, () => 42, 1000);
    const c = checkpoint(4, 777, 1);
    await store.save('run-a', c, { plan: 'p' });
    const back = (await store.load('run-a'))!;
    expect(back.meta).toEqual({ plan: 'p' });
    expect(back.savedAt).toBe(42);
    expect(back.checkpoint).toEqual(c);
    expect(back.checkpoint.params).toBeInstanceOf(Float32Array);
    expect(await store.list()).toEqual([{ runId: 'run-a', step: 4, totalSteps: 10, savedAt: 42, bytes: 777 * 12, lastLoss: 3 - 3 / 10, optimizer: { kind: 'adamw' }, meta: { plan: 'p' } }]);
    expect(await store.load('other')).toBeNull();
  });

  it('keeps 8-bit AdamW state (codes and block absmaxes) exactly, and says which optimiser it is for', async () => {
    const db = await freshStore();
    const store = new CheckpointStore<null>(db.db as never, () => 7, 1000);
    const c = checkpoint(3, 1001, 4, 'adamw-8bit');
    await store.save('run-8', c, null);
    const back = (await store.load('run-8'))!.checkpoint;
    expect(back).toEqual(c);
    if (back.optimizer.kind !== 'adamw-8bit') throw new Error('expected 8-bit state');
    expect(back.optimizer.expAvg).toBeInstanceOf(Uint8Array);
    expect(back.optimizer.absmax).toBeInstanceOf(Float32Array);
    // 4 bytes of weights and 2 of codes per parameter (plus 8 bytes of absmax per block of 256).
    expect(await store.list()).toMatchObject([{ runId: 'run-8', optimizer: { kind: 'adamw-8bit', blockSize: 256 }, bytes: 1001 * 4 + 1004 * 2 + 4 * 8 }]);
  });

  it('loads a checkpoint saved before 8-bit moments existed (format version 1) as f32 AdamW state', async () => {
    const db = await freshStore();
    const store = new CheckpointStore<{ plan: string }>(db.db as never, () => 1, 1000);
    const c = checkpoint(3, 500, 9);
    if (c.optimizer.kind !== 'adamw') throw new Error('expected f32 state');
    // The record and chunks exactly as version 1 wrote them: f32 arrays counted in floats, no optimiser anywhere.
    const arrays: Record<string, { floats: number; checksums: number[] }> = {};
    for (const [name, data] of [['params', c.params], ['expAvg', c.optimizer.expAvg], ['expAvgSq', c.optimizer.expAvgSq]] as const) {
      arrays[name] = { floats: data.length, checksums: await writeChunks(db.db as never, STORES.checkpoints, `run-bytes/old/1/${name}/`, new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 'test', 1000) };
    }
    const { optimizer: _o, params: _p, config: { optimizer: _c, ...config }, ...rest } = c;
    await (db.db as unknown as { put(store: string, value: unknown): Promise<unknown> }).put(STORES.checkpoints, {
      id: 'run/old', runId: 'old', generation: 1, savedAt: 5, state: { ...rest, version: 1, config }, arrays, meta: { plan: 'old' },
    });
    const back = (await store.load('old'))!;
    expect(back.checkpoint).toEqual(c);
    expect(back.checkpoint.config.optimizer).toEqual({ kind: 'adamw' });
    expect(await store.list()).toMatchObject([{ runId: 'old', step: 3, bytes: 500 * 12, optimizer: { kind: 'adamw' }, meta: { plan: 'old' } }]);
    // And a new save over it writes the current format.
    await store.save('old', back.checkpoint, back.meta);
    expect((await store.load('old'))!.checkpoint).toEqual(c);
  });

  it('replaces the previous checkpoint and leaves no old chunks', async () => {
    const db = await freshStore();
    const store = new CheckpointStore<null>(db.db as never, Date.now, 1000);
    await store.save('run-a', checkpoint(2, 900, 1), null);
    const before = (await keysOf(db, 'checkpoints')).length;
    await store.save('run-a', checkpoint(4, 900, 2), null);
    expect((await keysOf(db, 'checkpoints')).length).toBe(before);
    expect((await store.load('run-a'))!.checkpoint).toEqual(checkpoint(4, 900, 2));
    await store.save('run-b', checkpoint(1, 10, 3), null);
    await store.delete('run-a');
    expect((await store.list()).map((c) => c.runId)).toEqual(['run-b']);
    expect((await keysOf(db, 'checkpoints')).every((k) => k.includes('run-b'))).toBe(true);
  });

  it('a save that fails half way (full disk) keeps the previous checkpoint whole', async () => {
    const db = await freshStore();
    const store = new CheckpointStore<null>(db.db as never, Date.now, 1000);
    const first = checkpoint(2, 600, 1);
    await store.save('run-a', first, null);
    disk = new LimitedDisk(3000).install();
    const error = await store.save('run-a', checkpoint(4, 600, 2), null).catch((e: unknown) => e);
    expect((error as StoreError).code).toBe('quota');
    disk.uninstall();
    expect((await store.load('run-a'))!.checkpoint).toEqual(first);
    // The next save clears what the broken one left.
    await store.save('run-a', checkpoint(6, 600, 3), null);
    expect((await store.load('run-a'))!.checkpoint.step).toBe(6);
    const keys = await keysOf(db, 'checkpoints');
    expect(keys.filter((k) => k.startsWith('run-bytes/')).length).toBe(3 * Math.ceil((600 * 4) / 1000));
  });
});

describe('DownloadCache', () => {
  it('keeps received chunks under their URL and forgets them', async () => {
    const db = await freshStore();
    const cache = new DownloadCache(db.db as never, 4);
    const url = 'http://x/a/adapter_model.safetensors';
    let sums = await cache.append(url, { etag: '"e1"', size: 10 }, 0, Uint8Array.from([1, 2, 3, 4]), []);
    sums = await cache.append(url, { etag: '"e1"', size: 10 }, 1, Uint8Array.from([5, 6, 7, 8]), sums);
    expect(sums.length).toBe(2);
    const got = (await cache.load(url))!;
    expect([...got.bytes]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(got).toMatchObject({ etag: '"e1"', size: 10 });
    expect(await cache.load('http://x/other')).toBeNull();
    await cache.clear(url);
    expect(await cache.load(url)).toBeNull();
    expect(await keysOf(db, 'adapters')).toEqual([]);
  });
});
