import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../../../src/engine/engine';
import { processLocks } from '../../../../src/engine/platform/locks';
import type { Platform } from '../../../../src/engine/platform/types';
import { Session } from '../../../../src/engine/session/session';
import { STORES } from '../../../../src/engine/store/schema';
import { modelWriteLock } from '../../../../src/engine/weights/import';
import { modelApi } from '../../../../src/worker/model-api';
import { HubServer, TEST_REVISION } from '../../../support/hub-server';
import { FIXTURES } from '../../../support/safetensors-fixtures';

// The Model page's worker API without a GPU: download, verify, repair, delete; another tab's lock.
const REPO = 'test/tiny-phi';
const MODEL_ID = `${REPO}@${TEST_REVISION}:int8`;

let hub: HubServer;
beforeAll(async () => {
  hub = await HubServer.start({ repos: { [REPO]: join(FIXTURES, 'tiny-phi') } });
});
afterAll(() => hub.close());

function api() {
  const locks = processLocks();
  const platform: Platform = {
    kind: 'node',
    gpu: null,
    gpuMissingReason: 'no GPU in this test',
    indexedDB: new IDBFactory(),
    now: () => performance.now(),
    fetch: globalThis.fetch.bind(globalThis),
    storage: { persist: async () => true, persisted: async () => true, estimate: async () => null },
    locks,
  };
  const engine = new Engine(platform);
  const session = new Session(engine);
  return { api: modelApi(engine, session), session, locks };
}

describe('verifying a stored model repairs it instead of asking for a new download', () => {
  it('marks damaged records, and a resumed download fetches only them', async () => {
    const { api: m, session } = api();
    const settings = { repo: REPO, revision: TEST_REVISION, baseUrl: hub.url };
    expect((await m.downloadFromHub(settings, 'int8')).status).toBe('complete');
    expect(await m.verifyModel(MODEL_ID)).toMatchObject({ status: 'ok' });

    const store = await session.store();
    const entry = (await store.getTensors(MODEL_ID)).find((e) => e.key.startsWith('layers.1.'))!;
    const record = (await store.db.get(STORES.records, [MODEL_ID, entry.key, 0]))!;
    const bytes = new Uint8Array(await (record.data as Blob).arrayBuffer());
    bytes[0] ^= 1;
    await store.db.put(STORES.records, { ...record, data: new Blob([bytes]) });

    const verdict = await m.verifyModel(MODEL_ID);
    expect(verdict.status).toBe('damaged');
    if (verdict.status !== 'damaged') return;
    expect(verdict.problem.message).toMatch(new RegExp(`1 tensor has missing or damaged records \\(e\\.g\\. ${entry.key.replaceAll('.', '\\.')}, record 0: damaged\\)\\. They are marked to be fetched again\\.`));
    expect(verdict.problem.advice).toMatch(/Resume its download or import .* only the damaged parts are fetched again/);
    const listed = (await m.listModels()).find((x) => x.id === MODEL_ID)!;
    expect(listed.complete).toBe(false);

    hub.requests.length = 0;
    expect((await m.downloadFromHub(settings, 'int8')).status).toBe('complete');
    expect(hub.requests.some((r) => /\.safetensors$/.test(r.path) && r.status !== 302 && r.range === null)).toBe(false);
    expect(await m.verifyModel(MODEL_ID)).toMatchObject({ status: 'ok' });
  });

  it('refuses to delete a model another tab is writing, saying so', async () => {
    const { api: m, locks } = api();
    expect((await m.downloadFromHub({ repo: REPO, revision: TEST_REVISION, baseUrl: hub.url }, 'int8')).status).toBe('complete');
    let release!: () => void;
    const held = locks.exclusive(modelWriteLock(MODEL_ID), () => new Promise<void>((r) => (release = r)));
    await new Promise((r) => setTimeout(r, 0));
    await expect(m.deleteModel(MODEL_ID)).rejects.toThrow(/Another tab is importing or repairing test\/tiny-phi; pause it there \(or wait for it\), then delete it/);
    release();
    await held;
    await m.deleteModel(MODEL_ID);
    expect(await m.listModels()).toEqual([]);
  });
});
