import * as Comlink from 'comlink';
import type { Engine, GpuStatus } from '../engine/engine';
import { layernormBackward, layernormForward } from '../engine/kernels/layernorm';

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

export interface GpuApi {
  gpuStatus(): Promise<GpuStatus>;
  reacquireGpu(): Promise<GpuStatus>;
  /** Registers a callback (wrapped with Comlink.proxy) for a lost device. */
  onGpuLost(callback: (message: string) => void): void;
  /** Tests a device for real: LayerNorm forward and backward on given data, every output returned. */
  layernormCheck(input: LayernormCheckInput): Promise<LayernormCheckOutput>;
  /** Test hook: destroys the device as a driver reset would, to exercise loss and recovery. */
  simulateGpuLoss(): Promise<void>;
}

export function gpuApi(engine: Engine): GpuApi {
  return {
    gpuStatus: () => engine.gpuStatus(),
    reacquireGpu: () => engine.reacquire(),
    onGpuLost(callback) {
      engine.onGpuLost((message) => callback(message));
    },
    async layernormCheck({ rows, cols, inp, weight, bias, dout }) {
      const gpu = await engine.runtime();
      const t = {
        inp: gpu.upload('inp', [rows, cols], inp),
        weight: gpu.upload('weight', [cols], weight),
        bias: gpu.upload('bias', [cols], bias),
        dout: gpu.upload('dout', [rows, cols], dout),
        out: gpu.tensor('out', [rows, cols]),
        mean: gpu.tensor('mean', [rows]),
        rstd: gpu.tensor('rstd', [rows]),
        dinp: gpu.tensor('dinp', [rows, cols]),
      };
      layernormForward(gpu, t.out, t.mean, t.rstd, t.inp, t.weight, t.bias, rows, cols);
      layernormBackward(gpu, t.dinp, t.dout, t.inp, t.weight, t.mean, t.rstd, rows, cols);
      const result = {
        out: await gpu.readF32(t.out),
        mean: await gpu.readF32(t.mean),
        rstd: await gpu.readF32(t.rstd),
        dinp: await gpu.readF32(t.dinp),
      };
      for (const tensor of Object.values(t)) tensor.buffer.destroy();
      return Comlink.transfer(result, [result.out.buffer, result.mean.buffer, result.rstd.buffer, result.dinp.buffer]);
    },
    async simulateGpuLoss() {
      const gpu = await engine.runtime();
      // destroy() reports reason 'destroyed', which acquireGpu treats as ours; announce it like a real loss.
      gpu.device.destroy();
      engine.markLost('The GPU device was lost: simulated for testing.');
    },
  };
}
