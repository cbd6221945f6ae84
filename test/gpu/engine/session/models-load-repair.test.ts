import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processLocks } from '../../../../src/engine/platform/locks';
import { Session } from '../../../../src/engine/session/session';
import { STORES } from '../../../../src/engine/store/schema';
import { modelApi } from '../../../../src/worker/model-api';
import { TestEngine } from '../../../support/engine';
import { MODELS } from '../../../support/fixtures';
import { testGpu } from '../../../support/gpu';
import { HubServer, TEST_REVISION, TINY_MODEL_ID, TINY_REPO } from '../../../support/hub-server';
import { testPlatform } from '../../../support/platform';

// A record that fails its checksum while the model is loaded onto the GPU: the load says so, marks the
// record (and the rest of its tensor) to be fetched again, and a resumed download repairs the model
// from there, with no delete and no full download.

let hub: HubServer;
beforeAll(async () => (hub = await HubServer.start({ repos: { [TINY_REPO]: MODELS.tiny } })));
afterAll(() => hub.close());

describe('a damaged record found while loading', () => {
  it('is marked for repair, and resuming the download repairs only it', async () => {
    await testGpu();
    const engine = new TestEngine(testPlatform({ locks: processLocks() }));
    const session = new Session(engine);
    const api = modelApi(engine, session);
    const settings = { repo: TINY_REPO, revision: TEST_REVISION, baseUrl: hub.url };
    expect((await api.downloadFromHub(settings, 'int8')).status).toBe('complete');

    const store = await session.store();
    const entry = (await store.getTensors(TINY_MODEL_ID)).find((e) => e.key.startsWith('layers.0.') && e.recordCount > 0)!;
    const record = (await store.db.get(STORES.records, [TINY_MODEL_ID, entry.key, 0]))!;
    const bytes = new Uint8Array(await (record.data as Blob).arrayBuffer());
    bytes[3] ^= 0x10;
    await store.db.put(STORES.records, { ...record, data: new Blob([bytes]) });

    const failed = await api.loadModel(TINY_MODEL_ID);
    expect(failed.status).toBe('failed');
    if (failed.status !== 'failed') return;
    expect(failed.problem.code).toBe('corrupt');
    expect(failed.problem.message).toMatch(new RegExp(`Record 0 of ${entry.key.replaceAll('.', '\\.')} .* is damaged`));
    expect(failed.problem.advice).toMatch(/only the damaged parts are fetched again/);
    expect((await api.listModels())[0]).toMatchObject({ id: TINY_MODEL_ID, complete: false });

    hub.requests.length = 0;
    expect((await api.downloadFromHub(settings, 'int8')).status).toBe('complete');
    expect(hub.requests.some((r) => /\.safetensors$/.test(r.path) && r.status !== 302 && r.range === null)).toBe(false);
    expect((await api.loadModel(TINY_MODEL_ID)).status).toBe('loaded');
    session.unload();
  });
});
