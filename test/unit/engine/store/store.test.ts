import { afterEach, describe, expect, it } from 'vitest';
import { LimitedDisk, testPlatform } from '../../../support/idb';
import { StoreError } from '../../../../src/engine/store/errors';
import { DB_VERSION, STORES, type ModelManifest, type TensorEntry, type TensorRecord } from '../../../../src/engine/store/schema';
import { WeightStore } from '../../../../src/engine/store/store';
import { RecordChecksums } from '../../../../src/engine/store/record-checksum';
import { crc32 } from '../../../../src/engine/store/crc32';

const checksums = await RecordChecksums.load();

const MODEL = 'test/model@abc:int8';

function manifest(id = MODEL): ModelManifest {
  return {
    id,
    name: 'test',
    config: { model_type: 'phi' },
    source: { kind: 'hub', repo: 'test/model', revision: 'abc', baseUrl: 'http://localhost' },
    scheme: 'int8',
    files: [{ name: 'model.safetensors', size: null, etag: null, header: null, headerLength: null, complete: false }],
    tensorCount: 1,
    storedBytes: 3 * 40,
    complete: false,
    createdAt: 1,
    updatedAt: 1,
  };
}

function entry(key = 'layers.0.q.weight', modelId = MODEL): TensorEntry {
  return {
    modelId,
    key,
    hfName: `hf.${key}`,
    file: 'model.safetensors',
    shape: [6, 8],
    dtype: 'i8',
    sourceDtype: 'F16',
    rows: 6,
    cols: 8,
    rowsPerRecord: 2,
    recordCount: 3,
    bytes: 6 * 8 + 6 * 4,
    recordsDone: 0,
    checksums: [],
    complete: false,
  };
}

function record(e: TensorEntry, index: number, fill = index + 1): TensorRecord {
  const data = new Uint8Array(2 * 8).fill(fill).buffer;
  const scales = new Float32Array([fill, fill / 2]).buffer;
  return { modelId: e.modelId, key: e.key, index, rowStart: index * 2, rows: 2, data, scales, checksum: checksums.of(data, scales) };
}

async function storeError(p: Promise<unknown>): Promise<StoreError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(StoreError);
    return err as StoreError;
  }
  throw new Error('expected a StoreError');
}

let disk: LimitedDisk | null = null;
afterEach(() => {
  disk?.uninstall();
  disk = null;
});

describe('IndexedDB store', () => {
  it('creates every store of the schema, reserved ones included', async () => {
    const store = await WeightStore.open(testPlatform(), { name: 'schema-test' });
    expect(store.db.version).toBe(DB_VERSION);
    expect([...store.db.objectStoreNames].sort()).toEqual(Object.values(STORES).sort());
    expect([...store.db.transaction('tensors').store.indexNames]).toEqual(['byModel']);
    store.close();
  });

  it('writes records with their progress atomically and reads them back verified', async () => {
    const store = await WeightStore.open(testPlatform());
    let e = entry();
    await store.putModelWithTensors(manifest(), [e]);
    for (let i = 0; i < 3; i++) e = await store.writeRecord(e, record(e, i));
    expect(e).toMatchObject({ recordsDone: 3, complete: true });
    const stored = (await store.getTensor(MODEL, e.key))!;
    expect(stored).toMatchObject({ recordsDone: 3, complete: true, checksums: [0, 1, 2].map((i) => record(e, i).checksum) });
    const back: number[] = [];
    for await (const r of store.readRecords(stored)) back.push(new Uint8Array(r.data)[0], r.rowStart);
    expect(back).toEqual([1, 0, 2, 2, 3, 4]);
    expect(await store.verifyModel(MODEL)).toBe(e.bytes);
    await expect(store.writeRecord(entry(), record(e, 1))).rejects.toThrow(/record 1 written after 0 records/);
    // Data goes in as a Blob; a record of the first version (an ArrayBuffer) reads the same.
    expect((await store.db.get('records', [MODEL, e.key, 1]))!.data).toBeInstanceOf(Blob);
    await store.db.put('records', record(e, 1));
    expect(new Uint8Array((await store.readRecord(stored, 1)).data)).toEqual(new Uint8Array(record(e, 1).data));
  });

  it('reads and checks the CRC-32 records of the first version beside XXH64 ones', async () => {
    const store = await WeightStore.open(testPlatform());
    // What the first version wrote: ArrayBuffer data, a numeric CRC-32 over data then scales.
    const firstVersion = (e: TensorEntry, index: number): TensorRecord => {
      const r = record(e, index);
      return { ...r, checksum: crc32(new Uint8Array(r.scales!), crc32(new Uint8Array(r.data))) };
    };
    let e = entry();
    await store.putModelWithTensors(manifest(), [e]);
    e = await store.writeRecord(e, firstVersion(e, 0));
    await store.db.put('records', firstVersion(e, 0)); // its data as an ArrayBuffer, as then
    e = await store.writeRecord(e, record(e, 1)); // an import of the first version resumed now
    e = await store.writeRecord(e, record(e, 2));
    expect(e.checksums.map((c) => typeof c)).toEqual(['number', 'string', 'string']);
    expect(e.checksums[1]).toMatch(/^[0-9a-f]{16}$/);
    expect(await store.verifyModel(MODEL)).toBe(e.bytes);
    const damaged = firstVersion(e, 0);
    new Uint8Array(damaged.data)[7] ^= 0x04;
    await store.db.put('records', damaged);
    const err = await storeError(store.readRecord(e, 0));
    expect(err.code).toBe('corrupt');
    expect(err.message).toMatch(/Record 0 of layers\.0\.q\.weight .* its bytes give CRC-32 0x[0-9a-f]{8}, the record says CRC-32 0x[0-9a-f]{8}/);
    // A CRC-32 where the entry recorded an XXH64 (or the reverse) never passes.
    await store.db.put('records', firstVersion(e, 1));
    expect((await storeError(store.readRecord(e, 1))).message).toMatch(/its tensor expects XXH64 [0-9a-f]{16}/);
  });

  it('detects damaged, swapped and missing records', async () => {
    const store = await WeightStore.open(testPlatform());
    let e = entry();
    await store.putModelWithTensors(manifest(), [e]);
    for (let i = 0; i < 3; i++) e = await store.writeRecord(e, record(e, i));
    // one byte flipped behind the store's back
    const damaged = record(e, 1);
    new Uint8Array(damaged.data)[5] ^= 0x10;
    await store.db.put('records', damaged);
    let err = await storeError(store.readRecord(e, 1));
    expect(err.code).toBe('corrupt');
    expect(err.message).toMatch(/Record 1 of layers\.0\.q\.weight .* is damaged/);
    // a record that is self-consistent but not the one the entry recorded
    await store.db.put('records', { ...record(e, 2, 9), index: 2 });
    err = await storeError(store.readRecord(e, 2));
    expect(err.code).toBe('corrupt');
    await store.db.delete('records', [MODEL, e.key, 0]);
    err = await storeError(store.readRecord(e, 0));
    expect(err.code).toBe('missing');
    err = await storeError(store.verifyModel(MODEL));
    expect(err.code).toBe('missing');
  });

  it('streams the records of several tensors in order with reads ahead, each verified', async () => {
    const store = await WeightStore.open(testPlatform());
    const tensors: TensorEntry[] = [];
    for (const key of ['layers.0.q.weight', 'layers.0.k.weight', 'layers.0.v.weight']) {
      let e = entry(key);
      await store.putModelWithTensors(manifest(), [e]);
      for (let i = 0; i < 3; i++) e = await store.writeRecord(e, record(e, i, 10 * tensors.length + i));
      tensors.push(e);
    }
    const expected = tensors.flatMap((e, t) => [0, 1, 2].map((i) => `${e.key}#${i}:${10 * t + i}`));
    for (const readahead of [1, 2, 4, 100]) {
      const seen: string[] = [];
      for await (const r of store.streamRecords(tensors, { readahead })) seen.push(`${r.key}#${r.index}:${new Uint8Array(r.data)[0]}`);
      expect(seen, `readahead ${readahead}`).toEqual(expected);
    }
    await expect(store.streamRecords(tensors, { readahead: 0 }).next()).rejects.toThrow(/readahead must be a positive integer/);

    // A damaged record in the middle stops the stream there, with what was read before delivered.
    const damaged = record(tensors[1], 1, 11);
    new Uint8Array(damaged.data)[3] ^= 0x01;
    await store.db.put('records', damaged);
    const before: string[] = [];
    const err = await storeError(
      (async () => {
        for await (const r of store.streamRecords(tensors, { readahead: 4 })) before.push(`${r.key}#${r.index}`);
      })(),
    );
    expect(err.code).toBe('corrupt');
    expect(err.message).toMatch(/Record 1 of layers\.0\.k\.weight/);
    expect(before).toEqual(['layers.0.q.weight#0', 'layers.0.q.weight#1', 'layers.0.q.weight#2', 'layers.0.k.weight#0']);

    // Leaving early with reads still in flight is quiet (no unhandled rejection) and leaves the store usable.
    await store.db.delete('records', [MODEL, tensors[2].key, 2]);
    for await (const r of store.streamRecords(tensors, { readahead: 8 })) {
      if (r.index === 0) break;
    }
    expect((await store.readRecord(tensors[0], 2)).index).toBe(2);
    // An incomplete tensor is refused before any read.
    await expect(store.streamRecords([{ ...tensors[0], complete: false, recordsDone: 2 }]).next()).rejects.toThrow(/incomplete \(2 of 3 records\)/);
    store.close();
  });

  it('deletes one model completely and leaves the others', async () => {
    const store = await WeightStore.open(testPlatform());
    for (const id of [MODEL, 'other']) {
      let e = entry('layers.0.q.weight', id);
      await store.putModelWithTensors(manifest(id), [e, entry('layers.0.k.weight', id)]);
      for (let i = 0; i < 3; i++) e = await store.writeRecord(e, record(e, i));
      await store.putTokenizer(id, { 'tokenizer.json': '{}' });
    }
    await store.deleteModel(MODEL);
    expect(await store.getModel(MODEL)).toBeUndefined();
    expect(await store.getTensors(MODEL)).toEqual([]);
    expect(await store.getTokenizer(MODEL)).toBeUndefined();
    const keys = await store.db.getAllKeys('records');
    expect(keys.length).toBe(3);
    expect(keys.every((k) => k[0] === 'other')).toBe(true);
    expect((await store.getTensors('other')).length).toBe(2);
    expect(await store.getTokenizer('other')).toEqual({ 'tokenizer.json': '{}' });
  });

  for (const mode of ['request', 'commit'] as const) {
    it(`turns a full disk (${mode === 'request' ? 'failed put' : 'aborted transaction'}) into a quota error and keeps what was stored`, async () => {
      disk = new LimitedDisk(100, mode).install();
      const store = await WeightStore.open(testPlatform(disk.storage()));
      let e = entry();
      await store.putModelWithTensors(manifest(), [e]);
      e = await store.writeRecord(e, record(e, 0)); // 24 bytes
      e = await store.writeRecord(e, record(e, 1)); // 48
      disk.budget = 60;
      const err = await storeError(store.writeRecord(e, record(e, 2), 5000));
      expect(disk.failures).toBe(1);
      expect(err.code).toBe('quota');
      expect(err.needed).toBe(5000);
      expect(err.available).toBe(12);
      expect(err.message).toMatch(/storage is full: 4\.88 KiB more are needed but only 12 B are available \(48 B of 60 B used\)/);
      expect(err.message).toMatch(/Everything stored so far is kept/);
      // nothing torn: the entry still says two records, the third is absent, the first two verify
      const stored = (await store.getTensor(MODEL, e.key))!;
      expect(stored).toMatchObject({ recordsDone: 2, complete: false });
      expect(stored.checksums.length).toBe(2);
      expect(await store.db.get('records', [MODEL, e.key, 2])).toBeUndefined();
      for (const i of [0, 1]) await store.readRecord(stored, i);
      // more room: the same write now succeeds
      disk.budget = 1000;
      const done = await store.writeRecord(stored, record(e, 2));
      expect(done.complete).toBe(true);
    });
  }

  it('never claims more is needed than is free when the browser refuses with room to spare', async () => {
    // The browser reports 1 GB free but refuses the write anyway (a nearly full disk, a private window's cap).
    disk = new LimitedDisk(60).install();
    const store = await WeightStore.open(testPlatform(disk.storage(1_000_000_000)));
    let e = entry();
    await store.putModelWithTensors(manifest(), [e]);
    e = await store.writeRecord(e, record(e, 0));
    e = await store.writeRecord(e, record(e, 1));
    const err = await storeError(store.writeRecord(e, record(e, 2), 580_000));
    expect(err.code).toBe('quota');
    expect(err.message).not.toMatch(/more are needed/);
    expect(err.message).toMatch(/The browser refused to store more although it reports 953\.7 MiB free for this site \(48 B of 953\.7 MiB used\), more than the 566\.4 KiB still to store/);
    expect(err.message).toMatch(/Everything stored so far is kept: free space on the disk/);
    expect(err.needed).toBe(580_000);
    expect(err.available).toBe(1_000_000_000 - 48);
  });

  it('checks free space up front and reports usage and persistence', async () => {
    disk = new LimitedDisk(10_000);
    const store = await WeightStore.open(testPlatform(disk.storage()));
    await store.checkSpace(9_000);
    const err = await storeError(store.checkSpace(20_000));
    expect(err.code).toBe('quota');
    expect(err.message).toMatch(/19\.5 KiB more are needed but only 9\.77 KiB are available/);
    expect(await store.usage()).toEqual({ usage: 0, quota: 10_000, persisted: false });
    expect(await store.requestPersistence()).toBe(true);
    const unknown = await WeightStore.open(testPlatform());
    await unknown.checkSpace(1e15); // the host cannot say: no early refusal
    expect(await unknown.usage()).toEqual({ usage: null, quota: null, persisted: true });
  });
});
