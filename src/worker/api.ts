import type { GpuStatus } from '../engine/engine';

/** Arrays crossing the worker boundary: plain typed arrays, transferred or copied by structured clone. */
export interface LayernormCheckInput {
  rows: number;
  cols: number;
  inp: Float32Array;
  weight: Float32Array;
  bias: Float32Array;
  dout: Float32Array;
}

export interface LayernormCheckOutput {
  out: Float32Array;
  mean: Float32Array;
  rstd: Float32Array;
  dinp: Float32Array;
}

/** What the engine worker exposes through comlink. The UI only ever sees this interface. */
export interface EngineApi {
  gpuStatus(): Promise<GpuStatus>;
  reacquireGpu(): Promise<GpuStatus>;
  /** Registers a callback (wrapped with Comlink.proxy) for a lost device. */
  onGpuLost(callback: (message: string) => void): void;
  /** Test a device for real: runs LayerNorm forward and backward on given data and returns every output. */
  layernormCheck(input: LayernormCheckInput): Promise<LayernormCheckOutput>;
  /** Test hook: destroys the device as a driver reset would, to exercise loss and recovery. */
  simulateGpuLoss(): Promise<void>;
}
