import { layernormBackward, layernormForward } from '../../src/engine/kernels/layernorm';
import type { BenchCase } from './harness';

/** Kernel benchmarks on Phi-2 shapes (hidden 2560), random data: LayerNorm is bandwidth-bound. */
export function layernormCases(hidden = 2560): BenchCase[] {
  return [512, 2048].flatMap((rows): BenchCase[] => {
    const n = rows * hidden;
    const make = (gpu: Parameters<BenchCase['setup']>[0]) => {
      const x = new Float32Array(n).map((_, i) => Math.sin(i));
      return {
        inp: gpu.upload('inp', [rows, hidden], x),
        w: gpu.upload('w', [hidden], new Float32Array(hidden).fill(1)),
        b: gpu.upload('b', [hidden], new Float32Array(hidden)),
        out: gpu.tensor('out', [rows, hidden]),
        mean: gpu.tensor('mean', [rows]),
        rstd: gpu.tensor('rstd', [rows]),
        dout: gpu.upload('dout', [rows, hidden], x),
        dinp: gpu.tensor('dinp', [rows, hidden]),
      };
    };
    return [
      {
        name: `layernorm.fwd ${rows}x${hidden}`,
        bytes: 2 * n * 4,
        setup(gpu) {
          const t = make(gpu);
          return (g) => layernormForward(g, t.out, t.mean, t.rstd, t.inp, t.w, t.b, rows, hidden);
        },
      },
      {
        name: `layernorm.bwd ${rows}x${hidden}`,
        bytes: 3 * n * 4,
        setup(gpu) {
          const t = make(gpu);
          layernormForward(gpu, t.out, t.mean, t.rstd, t.inp, t.w, t.b, rows, hidden);
          return (g) => layernormBackward(g, t.dinp, t.dout, t.inp, t.w, t.mean, t.rstd, rows, hidden);
        },
      },
    ];
  });
}
