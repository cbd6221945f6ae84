import { afterAll } from 'vitest';
import type { GpuRuntime } from '../../src/engine/gpu/runtime';
import { Phi2Model } from '../../src/engine/model/phi2/forward';
import { loadPhi2FromSource } from '../../src/engine/model/phi2/load';
import { destroyParams } from '../../src/engine/model/phi2/params';
import type { QuantScheme } from '../../src/engine/weights/layout';
import { directorySource } from './fixtures';

export type FixtureModelLoader = (gpu: GpuRuntime, dir: string, scheme: QuantScheme) => Promise<Phi2Model>;

/**
 * Loading is the slow part of a model test on SwiftShader (streaming, quantising, uploading), so a file
 * loads each fixture directory in each weight mode once, on first use, and frees them after its tests.
 * The models are shared read-only: a test that wants other inference settings makes its own Phi2Model
 * over the same params (`new Phi2Model(gpu, model.params, options)`), and its own workspaces and caches.
 * Call once at the top of a test file.
 */
export function fixtureModelLoader(): FixtureModelLoader {
  const loaded = new Map<string, Promise<Phi2Model>>();
  afterAll(async () => {
    for (const m of loaded.values()) {
      const model = await m.catch(() => null); // a load that failed has failed its test already
      if (!model) continue;
      model.destroy();
      destroyParams(model.params);
    }
    loaded.clear();
  });
  return (gpu, dir, scheme) => {
    const key = `${dir}:${scheme}`;
    let model = loaded.get(key);
    if (!model) {
      model = (async () => new Phi2Model(gpu, (await loadPhi2FromSource(gpu, await directorySource(dir), scheme)).params))();
      loaded.set(key, model);
    }
    return model;
  };
}
