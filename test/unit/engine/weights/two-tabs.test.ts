import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processLocks, type Locks } from '../../../../src/engine/platform/locks';
import { StoreError } from '../../../../src/engine/store/errors';
import { STORES } from '../../../../src/engine/store/schema';
import { WeightStore } from '../../../../src/engine/store/store';
import { HubSource } from '../../../../src/engine/weights/hub';
import { importModel, type ImportTarget } from '../../../../src/engine/weights/import';
import type { ImportProgress } from '../../../../src/engine/weights/progress';
import { HubServer, TEST_REVISION } from '../../../support/hub-server';
import { FIXTURES } from '../../../support/safetensors-fixtures';
import { expectStoredModelMatches } from '../../../support/stored-weights';

// Two tabs of the app share one IndexedDB and the origin's Web Locks. Here each "tab" is a WeightStore
// of its own over one fake-indexeddb factory, and the tabs share one lock registry (what Web Locks are
// across tabs; platform/locks.ts processLocks is the same guarantee within a process).
const REPO = 'test/tiny-phi';
const SHARD1 = 'model-00001-of-00002.safetensors';
const SHARD2 = 'model-00002-of-00002.safetensors';
const FAST = { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 };
const RECORD_BYTES = 64 * 1024;
const storage = { persist: async () => true, persisted: async () => true, estimate: async () => null };

let hub: HubServer;
beforeAll(async () => {
  hub = await HubServer.start({ repos: { [REPO]: join(FIXTURES, 'tiny-phi') } });
});
afterAll(() => hub.close());

const source = () => new HubSource({ fetch: globalThis.fetch.bind(globalThis) }, { repo: REPO, revision: TEST_REVISION, baseUrl: hub.url });
const served = () => new Map([SHARD1, SHARD2].map((f) => [f, hub.content(REPO, f)]));

/** One tab: its own connection to the shared database, the shared locks. */
async function tab(factory: IDBFactory, name: string): Promise<WeightStore> {
  return WeightStore.open({ indexedDB: factory, storage }, { name });
}

function run(store: ImportTarget, locks: Locks, options: { signal?: AbortSignal; onProgress?: (p: ImportProgress) => void } = {}) {
  const notices: string[] = [];
  const done = importModel({
    source: source(),
    store,
    locks,
    retry: FAST,
    recordBytes: RECORD_BYTES,
    signal: options.signal,
    onProgress: (p) => {
      if (p.notice) notices.push(p.notice);
      options.onProgress?.(p);
    },
  });
  return { done, notices };
}

describe('two tabs, one model', () => {
  it('serialises the writes: the second tab waits, says so, and then finds the model complete', async () => {
    const factory = new IDBFactory();
    const locks = processLocks();
    const [a, b] = [await tab(factory, 'two-tabs-1'), await tab(factory, 'two-tabs-1')];
    hub.setFaults(SHARD1, { throttleBytesPerSecond: 2_000_000 });
    const first = run(a, locks);
    // The second tab starts once the first is writing weights.
    await new Promise<void>((resolve) => {
      const check = setInterval(async () => {
        if ((await a.listModels()).length) {
          clearInterval(check);
          resolve();
        }
      }, 5);
    });
    const second = run(b, locks);
    const [ma, mb] = await Promise.all([first.done, second.done]);
    hub.setFaults(SHARD1, {});
    expect(ma.complete && mb.complete).toBe(true);
    expect(second.notices).toContain('Another tab is writing this model (importing, repairing or deleting it); this import waits until it is done.');
    expect(first.notices.filter((n) => n.startsWith('Another tab'))).toEqual([]);
    expect(await a.checkRecords(ma.id)).toEqual([]);
    await expectStoredModelMatches(b, ma.id, served());
  });

  it('a tab that was behind and is closed while the other finishes leaves the model complete and intact', async () => {
    const factory = new IDBFactory();
    const locks = processLocks();
    const [a, b] = [await tab(factory, 'two-tabs-2'), await tab(factory, 'two-tabs-2')];
    hub.setFaults(SHARD1, { throttleBytesPerSecond: 2_000_000 });
    const first = run(a, locks);
    await new Promise((r) => setTimeout(r, 50));
    const closing = new AbortController();
    const second = run(b, locks, { signal: closing.signal });
    await new Promise((r) => setTimeout(r, 50));
    closing.abort(); // tab B closed while waiting its turn
    await expect(second.done).rejects.toBeDefined();
    const manifest = await first.done;
    hub.setFaults(SHARD1, {});
    expect(manifest.complete).toBe(true);
    expect(await a.checkRecords(manifest.id)).toEqual([]);
    await expectStoredModelMatches(a, manifest.id, served());
  });

  it('writes "complete" only after every record is read back and verified', async () => {
    const store = await tab(new IDBFactory(), 'two-tabs-3');
    // A store that loses one write without an error (another tab deleting under it, a storage fault).
    let dropped = false;
    const lossy: ImportTarget = Object.assign(Object.create(store) as WeightStore, {
      writeRecord: async (...args: Parameters<WeightStore['writeRecord']>) => {
        const updated = await store.writeRecord(...args);
        if (!dropped && args[1].index === 1) {
          dropped = true;
          await store.db.delete(STORES.records, [args[1].modelId, args[1].key, 1]);
        }
        return updated;
      },
    });
    const err = await run(lossy, processLocks()).done.catch((e: unknown) => e as StoreError);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as Error).message).toMatch(/1 tensor failed verification right after being stored \(e\.g\. .* record 1, missing\)\. They are marked to be fetched again: resume the import/);
    const id = (await store.listModels())[0].id;
    expect((await store.getModel(id))!.complete).toBe(false);
    // Resuming fetches what was lost, and only then is the model complete.
    const resumed = await run(store, processLocks()).done;
    expect(resumed.complete).toBe(true);
    await expectStoredModelMatches(store, id, served());
  });

  it('importing a complete model again re-checks its records and repairs what is missing or damaged', async () => {
    const store = await tab(new IDBFactory(), 'two-tabs-4');
    const manifest = await run(store, processLocks()).done;
    const entries = await store.getTensors(manifest.id);
    const lost = entries.find((e) => e.recordCount > 2)!;
    const rotten = entries.find((e) => e.key !== lost.key && e.recordCount > 1)!;
    await store.db.delete(STORES.records, [manifest.id, lost.key, 2]);
    const record = (await store.db.get(STORES.records, [manifest.id, rotten.key, 1]))!;
    const bytes = new Uint8Array(await (record.data as Blob).arrayBuffer());
    bytes[7] ^= 0x40;
    await store.db.put(STORES.records, { ...record, data: new Blob([bytes]) });
    expect(await store.checkRecords(manifest.id)).toEqual(
      expect.arrayContaining([
        { key: lost.key, index: 2, reason: 'missing' },
        { key: rotten.key, index: 1, reason: 'damaged' },
      ]),
    );

    hub.requests.length = 0;
    const again = run(store, processLocks());
    const repaired = await again.done;
    expect(again.notices.some((n) => /^2 tensors were missing or damaged in the stored copy \(e\.g\. [\w.]+\); fetching only those parts again\.$/.test(n))).toBe(true);
    expect(repaired.complete).toBe(true);
    expect(await store.checkRecords(manifest.id)).toEqual([]);
    await expectStoredModelMatches(store, manifest.id, served());
    // Only the damaged parts onwards were asked for, not the files from their start.
    const ranged = hub.requests.filter((r) => /\.safetensors$/.test(r.path) && r.status !== 302);
    expect(ranged.length).toBeGreaterThan(0);
    expect(ranged.every((r) => r.range !== null && r.range !== 'bytes=0-')).toBe(true);
  });
});
