import type { GpuStatus } from '../engine/engine';
import { Comlink, engine } from '../worker/client';

/** What the UI knows about the worker's GPU: rune state, filled from the worker. */
export class GpuState {
  status = $state<'checking' | 'ready' | 'unavailable' | 'lost'>('checking');
  detail = $state<GpuStatus | null>(null);
  lostMessage = $state<string | null>(null);

  private listening = false;

  async check(): Promise<void> {
    this.status = 'checking';
    const api = engine();
    if (!this.listening) {
      this.listening = true;
      await api.onGpuLost(
        Comlink.proxy((message: string) => {
          this.lostMessage = message;
          this.status = 'lost';
        }),
      );
    }
    this.apply(await api.gpuStatus());
  }

  async reacquire(): Promise<void> {
    this.status = 'checking';
    this.apply(await engine().reacquireGpu());
  }

  private apply(result: GpuStatus): void {
    this.detail = result;
    this.status = result.state;
    if (result.state === 'ready') this.lostMessage = null;
  }
}

export const gpuState = new GpuState();
