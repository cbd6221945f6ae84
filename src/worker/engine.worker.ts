/// <reference lib="webworker" />
import * as Comlink from 'comlink';
import { Engine } from '../engine/engine';
import { layernormBackward, layernormForward } from '../engine/kernels/layernorm';
import { browserPlatform } from '../engine/platform/browser';
import type { EngineApi, LayernormCheckInput } from './api';

// The worker is the only place the engine meets the browser: it builds the browser platform and
// exposes the engine to the page through comlink. All GPU work happens here, off the UI thread.
const engine = new Engine(browserPlatform());

const api: EngineApi = {
  gpuStatus: () => engine.gpuStatus(),
  reacquireGpu: () => engine.reacquire(),
  onGpuLost(callback) {
    engine.onGpuLost((message) => callback(message));
  },
  async layernormCheck({ rows, cols, inp, weight, bias, dout }: LayernormCheckInput) {
    const gpu = await engine.runtime();
    const tensors = {
      inp: gpu.upload('inp', [rows, cols], inp),
      weight: gpu.upload('weight', [cols], weight),
      bias: gpu.upload('bias', [cols], bias),
      dout: gpu.upload('dout', [rows, cols], dout),
      out: gpu.tensor('out', [rows, cols]),
      mean: gpu.tensor('mean', [rows]),
      rstd: gpu.tensor('rstd', [rows]),
      dinp: gpu.tensor('dinp', [rows, cols]),
    };
    const t = tensors;
    layernormForward(gpu, t.out, t.mean, t.rstd, t.inp, t.weight, t.bias, rows, cols);
    layernormBackward(gpu, t.dinp, t.dout, t.inp, t.weight, t.mean, t.rstd, rows, cols);
    const result = {
      out: await gpu.readF32(t.out),
      mean: await gpu.readF32(t.mean),
      rstd: await gpu.readF32(t.rstd),
      dinp: await gpu.readF32(t.dinp),
    };
    for (const tensor of Object.values(tensors)) tensor.buffer.destroy();
    return Comlink.transfer(result, [result.out.buffer, result.mean.buffer, result.rstd.buffer, result.dinp.buffer]);
  },
  async simulateGpuLoss() {
    const gpu = await engine.runtime();
    // destroy() reports reason 'destroyed', which acquireGpu treats as ours; announce it like a real loss.
    gpu.device.destroy();
    engine.markLost('The GPU device was lost: simulated for testing.');
  },
};

Comlink.expose(api);
