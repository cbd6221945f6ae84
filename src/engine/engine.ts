import { acquireGpu, GpuError, type GpuReport } from './gpu/device';
import { GpuRuntime } from './gpu/runtime';
import type { Platform } from './platform/types';

export type GpuStatus =
  | { state: 'ready'; report: GpuReport; platform: Platform['kind'] }
  | { state: 'unavailable'; code: string; message: string; platform: Platform['kind'] };

/**
 * The engine's root object: owns the GPU runtime for one host (a worker or a Node process).
 * Everything GPU-related goes through `runtime()`, which acquires a device on first use and again
 * after a loss, so a lost device never needs a page reload.
 */
export class Engine {
  private current: Promise<GpuRuntime> | null = null;
  private lostListeners = new Set<(message: string) => void>();

  constructor(readonly platform: Platform) {}

  runtime(): Promise<GpuRuntime> {
    if (!this.current) {
      const attempt = acquireGpu(this.platform.gpu, this.platform.gpuMissingReason, {
        onLost: (message) => this.markLost(message),
      }).then((ctx) => new GpuRuntime(ctx));
      this.current = attempt;
      attempt.catch(() => {
        if (this.current === attempt) this.current = null;
      });
    }
    return this.current;
  }

  async gpuStatus(): Promise<GpuStatus> {
    try {
      const gpu = await this.runtime();
      return { state: 'ready', report: gpu.ctx.report, platform: this.platform.kind };
    } catch (err) {
      const code = err instanceof GpuError ? err.code : 'device-failed';
      return { state: 'unavailable', code, message: (err as Error).message, platform: this.platform.kind };
    }
  }

  /** Drops the current device (destroying it) and acquires a new one. */
  async reacquire(): Promise<GpuStatus> {
    const old = this.current;
    this.current = null;
    if (old) {
      try {
        (await old).device.destroy();
      } catch {
        // the old device had failed to be acquired; nothing to release
      }
    }
    return this.gpuStatus();
  }

  /** Forgets the device and tells the listeners, as a real loss would. */
  markLost(message: string): void {
    this.current = null;
    for (const listener of this.lostListeners) listener(message);
  }

  onGpuLost(listener: (message: string) => void): () => void {
    this.lostListeners.add(listener);
    return () => this.lostListeners.delete(listener);
  }
}
