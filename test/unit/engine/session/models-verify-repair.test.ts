import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../../../src/engine/engine';
import { processLocks } from '../../../../src/engine/platform/locks';
import { Session } from '../../../../src/engine/session/session';
import { STORES } from '../../../../src/engine/store/schema';
import { modelWriteLock } from '../../../../src/engine/weights/import';
import { modelApi } from '../../../../src/worker/model-api';
import { MODELS } from '../../../support/fixtures';
import { HubServer, TEST_REVISION, TINY_MODEL_ID, TINY_REPO } from '../../../support/hub-server';
import { testPlatform } from '../../../support/platform';

// The Model page's worker API without a GPU: download, verify, repair, delete; another tab's lock.

let hub: HubServer;
beforeAll(async () => (hub = await HubServer.start({ repos: { [TINY_REPO]: MODELS.tiny } })));
afterAll(() => hub.close());

function api() {
  const locks = processLocks();
  const engine = new Engine(testPlatform({ locks }));
  const session = new Session(engine);
  return { api: modelApi(engine, session), session, locks };
}

describe('verifying a stored model repairs it instead of asking for a new download', () => {
  it('marks damaged records, and a resumed download fetches only them', async () => {
    const { api: m, session } = api();
    const settings = { repo: TINY_REPO, revision: TEST_REVISION, baseUrl: hub.url };
    expect((await m.downloadFromHub(settings, 'int8')).status).toBe('complete');
    expect(await m.verifyModel(TINY_MODEL_ID)).toMatchObject({ status: 'ok' });

    const store = await session.store();
    const entry = (await store.getTensors(TINY_MODEL_ID)).find((e) => e.key.startsWith('layers.1.'))!;
    const record = (await store.db.get(STORES.records, [TINY_MODEL_ID, entry.key, 0]))!;
    const bytes = new Uint8Array(await (record.data as Blob).arrayBuffer());
    bytes[0] ^= 1;
    await store.db.put(STORES.records, { ...record, data: new Blob([bytes]) });

    const verdict = await m.verifyModel(TINY_MODEL_ID);
    expect(verdict.status).toBe('damaged');
    if (verdict.status !== 'damaged') return;
    expect(verdict.problem.message).toMatch(new RegExp(`1 tensor has missing or damaged records \\(e\\.g\\. ${entry.key.replaceAll('.', '\\.')}, record 0: damaged\\)\\. They are marked to be fetched again\\.`));
    expect(verdict.problem.advice).toMatch(/Resume its download or import .* only the damaged parts are fetched again/);
    const listed = (await m.listModels()).find((x) => x.id === TINY_MODEL_ID)!;
    expect(listed.complete).toBe(false);

    hub.requests.length = 0;
    expect((await m.downloadFromHub(settings, 'int8')).status).toBe('complete');
    expect(hub.requests.some((r) => /\.safetensors$/.test(r.path) && r.status !== 302 && r.range === null)).toBe(false);
    expect(await m.verifyModel(TINY_MODEL_ID)).toMatchObject({ status: 'ok' });
  });

  it('refuses to delete a model another tab is writing, saying so', async () => {
    const { api: m, locks } = api();
    expect((await m.downloadFromHub({ repo: TINY_REPO, revision: TEST_REVISION, baseUrl: hub.url }, 'int8')).status).toBe('complete');
    let release!: () => void;
    const held = locks.exclusive(modelWriteLock(TINY_MODEL_ID), () => new Promise<void>((r) => (release = r)));
    await new Promise((r) => setTimeout(r, 0));
    await expect(m.deleteModel(TINY_MODEL_ID)).rejects.toThrow(/Another tab is importing or repairing test\/tiny-phi; pause it there \(or wait for it\), then delete it/);
    release();
    await held;
    await m.deleteModel(TINY_MODEL_ID);
    expect(await m.listModels()).toEqual([]);
  });
});
