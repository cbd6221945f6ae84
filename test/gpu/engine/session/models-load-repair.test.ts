import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../../../src/engine/engine';
import type { GpuRuntime } from '../../../../src/engine/gpu/runtime';
import { processLocks } from '../../../../src/engine/platform/locks';
import type { Platform } from '../../../../src/engine/platform/types';
import { Session } from '../../../../src/engine/session/session';
import { STORES } from '../../../../src/engine/store/schema';
import { modelApi } from '../../../../src/worker/model-api';
import { testGpu } from '../../../support/gpu';
import { HubServer, TEST_REVISION } from '../../../support/hub-server';
import { FIXTURES } from '../../../support/safetensors-fixtures';

// A record that fails its checksum while the model is loaded onto the GPU: the load says so, marks the
// record (and the rest of its tensor) to be fetched again, and a resumed download repairs the model
// from there, with no delete and no full download.
const REPO = 'test/tiny-phi';
const MODEL_ID = `${REPO}@${TEST_REVISION}:int8`;

class TestEngine extends Engine {
  override runtime(): Promise<GpuRuntime> {
    return testGpu();
  }
}

let hub: HubServer;
beforeAll(async () => {
  hub = await HubServer.start({ repos: { [REPO]: join(FIXTURES, 'tiny-phi') } });
});
afterAll(() => hub.close());

describe('a damaged record found while loading', () => {
  it('is marked for repair, and resuming the download repairs only it', async () => {
    await testGpu();
    const platform: Platform = {
      kind: 'node',
      gpu: null,
      gpuMissingReason: 'tests share one device',
      indexedDB: new IDBFactory(),
      now: () => performance.now(),
      fetch: globalThis.fetch.bind(globalThis),
      storage: { persist: async () => true, persisted: async () => true, estimate: async () => null },
      locks: processLocks(),
    };
    const engine = new TestEngine(platform);
    const session = new Session(engine);
    const api = modelApi(engine, session);
    const settings = { repo: REPO, revision: TEST_REVISION, baseUrl: hub.url };
    expect((await api.downloadFromHub(settings, 'int8')).status).toBe('complete');

    const store = await session.store();
    const entry = (await store.getTensors(MODEL_ID)).find((e) => e.key.startsWith('layers.0.') && e.recordCount > 0)!;
    const record = (await store.db.get(STORES.records, [MODEL_ID, entry.key, 0]))!;
    const bytes = new Uint8Array(await (record.data as Blob).arrayBuffer());
    bytes[3] ^= 0x10;
    await store.db.put(STORES.records, { ...record, data: new Blob([bytes]) });

    const failed = await api.loadModel(MODEL_ID);
    expect(failed.status).toBe('failed');
    if (failed.status !== 'failed') return;
    expect(failed.problem.code).toBe('corrupt');
    expect(failed.problem.message).toMatch(new RegExp(`Record 0 of ${entry.key.replaceAll('.', '\\.')} .* is damaged`));
    expect(failed.problem.advice).toMatch(/only the damaged parts are fetched again/);
    expect((await api.listModels())[0]).toMatchObject({ id: MODEL_ID, complete: false });

    hub.requests.length = 0;
    expect((await api.downloadFromHub(settings, 'int8')).status).toBe('complete');
    expect(hub.requests.some((r) => /\.safetensors$/.test(r.path) && r.status !== 302 && r.range === null)).toBe(false);
    expect((await api.loadModel(MODEL_ID)).status).toBe('loaded');
    session.unload();
  });
});
