import { Engine } from '../../src/engine/engine';
import type { GpuRuntime } from '../../src/engine/gpu/runtime';
import { testGpu } from './gpu';

/** An Engine on the test file's shared Dawn device (testGpu) instead of a device of its own. */
export class TestEngine extends Engine {
  override runtime(): Promise<GpuRuntime> {
    return testGpu();
  }
}
