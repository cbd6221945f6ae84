import { describe, expect, it } from 'vitest';
import { AdapterStore } from '../../../src/engine/adapters/store';
import { SessionError, type Session } from '../../../src/engine/session/session';
import { inspectApi } from '../../../src/worker/inspect-api';
import type { InspectProgress, UpdateCell } from '../../../src/worker/inspect-api';
import { freshStore, makeAdapter } from '../../support/adapters';

// The Inspect view's worker side without a GPU: the update map needs only the stored adapters.
async function setup() {
  const store = await freshStore();
  const adapters = AdapterStore.over(store);
  await adapters.put(makeAdapter(1), { id: 'one', name: 'one', origin: { kind: 'upload', files: [] } });
  await adapters.put(makeAdapter(2), { id: 'two', name: 'two', origin: { kind: 'upload', files: [] } });
  const session = {
    store: async () => store,
    loaded: null,
    requireModel: () => {
      throw new SessionError('No model is loaded on the GPU. Load one on the Model page first.');
    },
  } as unknown as Session;
  return inspectApi({ platform: {} as never }, session);
}

describe('the Inspect worker API', () => {
  it('maps two stored adapters module by module, with progress for each', async () => {
    const api = await setup();
    const seen: Array<InspectProgress<UpdateCell>> = [];
    const cells = await api.inspectSpectra({ jobId: 'a', adapter: 'one', compareWith: 'two' }, (p) => seen.push(p));
    expect(cells).toHaveLength(6); // q_proj, v_proj, fc1 in two layers
    expect(seen.map((p) => [p.jobId, p.done, p.total])).toEqual([1, 2, 3, 4, 5, 6].map((d) => ['a', d, 6]));
    expect(cells.every((c) => c.first && c.second && c.cosine !== null && Math.abs(c.cosine) <= 1)).toBe(true);
  });

  it('stops when cancelled, refuses a job id in use, and says a model is needed for the GPU tools', async () => {
    const api = await setup();
    const run = api.inspectSpectra({ jobId: 'b', adapter: 'one', compareWith: null }, (p) => p.done === 2 && void api.cancelInspect('b'));
    await expect(api.inspectSpectra({ jobId: 'b', adapter: 'two', compareWith: null })).rejects.toThrow(/already running/);
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    await expect(api.inspectSpectra({ jobId: 'c', adapter: 'missing', compareWith: null })).rejects.toThrow(/No stored adapter "missing"/);
    const settings = { k: 2, threshold: 0.5, compareWith: 4, subspace: { iterations: 2, oversample: 2, seed: 1 } };
    await expect(api.inspectIntruders({ jobId: 'd', adapter: 'one', modules: 'all', settings })).rejects.toThrow(/No model is loaded/);
    await expect(api.runContrast({ jobId: 'e', prompt: 'x', wrapper: 'none', adapter: 'one', direction: 'adapter-over-base', samples: 1, maxNewTokens: 4, plausibility: 0.1, temperature: 0, seed: 0 })).rejects.toThrow(/No model is loaded/);
  });
});
