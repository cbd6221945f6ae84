import { afterAll } from 'vitest';
import type { GpuRuntime } from '../../src/engine/gpu/runtime';
import { Phi2Model } from '../../src/engine/model/phi2/forward';
import { loadPhi2FromSource } from '../../src/engine/model/phi2/load';
import { destroyParams } from '../../src/engine/model/phi2/params';
import type { QuantScheme } from '../../src/engine/store/schema';
import { directorySource } from './fixtures';

/**
 * A fixture checkpoint as a Phi2Model on the test file's GPU, loaded on first use and destroyed after
 * the file's tests. Call it at a test file's top level (it registers the afterAll); the function it
 * returns gives every test of the file the same model.
 */
export function modelPerFile(dir: string, scheme: QuantScheme): (gpu: GpuRuntime) => Promise<Phi2Model> {
  let model: Promise<Phi2Model> | null = null;
  afterAll(async () => {
    // A load that failed has failed its test already.
    const m = await model?.catch(() => null);
    if (!m) return;
    m.destroy();
    destroyParams(m.params);
  });
  return (gpu) => (model ??= (async () => new Phi2Model(gpu, (await loadPhi2FromSource(gpu, await directorySource(dir), scheme)).params))());
}
