import { describe, expect, it } from 'vitest';
import { createRotaryTable, rotaryBackward, rotaryForward, rotaryTableData } from '../../../../src/engine/kernels/rotary';
import { rotaryRef, type RotaryRefShape } from '../../../reference/rotary';
import { compareTensors, randomArray, rng } from '../../../support/compare';
import { testGpu } from '../../../support/gpu';

// batch, seq, heads, headDim, rotaryDim, theta, pastLen: Phi-2 (80, 32), tiny-phi (32, 8), the whole
// head rotated, an odd head size, one token after a long cache, positions near Phi-2's 2048.
const CASES: RotaryRefShape[] = [
  { batch: 1, seq: 1, heads: 1, headDim: 80, rotaryDim: 32, theta: 10000, pastLen: 5 },
  { batch: 2, seq: 17, heads: 3, headDim: 80, rotaryDim: 32, theta: 10000 },
  { batch: 2, seq: 5, heads: 2, headDim: 32, rotaryDim: 8, theta: 10000, pastLen: 3 },
  { batch: 1, seq: 130, heads: 2, headDim: 16, rotaryDim: 16, theta: 500 },
  { batch: 2, seq: 9, heads: 1, headDim: 7, rotaryDim: 2, theta: 10000 },
  { batch: 1, seq: 1, heads: 32, headDim: 80, rotaryDim: 32, theta: 10000, pastLen: 2047 },
  { batch: 2, seq: 300, heads: 2, headDim: 80, rotaryDim: 32, theta: 10000, pastLen: 1700 },
  // Left padding (batched generation): none, mixed, all but one row padded, one decode token after
  // a padded prefill, long padded prompts.
  { batch: 2, seq: 5, heads: 2, headDim: 32, rotaryDim: 8, theta: 10000, leftPad: [0, 0] },
  { batch: 3, seq: 17, heads: 3, headDim: 80, rotaryDim: 32, theta: 10000, leftPad: [0, 5, 16] },
  { batch: 3, seq: 1, heads: 2, headDim: 80, rotaryDim: 32, theta: 10000, pastLen: 40, leftPad: [39, 0, 7] },
  { batch: 2, seq: 9, heads: 1, headDim: 7, rotaryDim: 2, theta: 10000, pastLen: 3, leftPad: [11, 2] },
  { batch: 2, seq: 300, heads: 2, headDim: 80, rotaryDim: 32, theta: 10000, pastLen: 1700, leftPad: [1999, 123] },
];

function tag(s: RotaryRefShape): string {
  const pad = s.leftPad ? ` pad[${Array.from(s.leftPad)}]` : '';
  return `B${s.batch} T${s.seq} H${s.heads} D${s.headDim} R${s.rotaryDim} past${s.pastLen ?? 0}${pad}`;
}

describe('rotary reference', () => {
  it('its backward is the transpose of its forward: <R x, y> = <x, R^T y>', () => {
    const s: RotaryRefShape = { batch: 2, seq: 6, heads: 2, headDim: 10, rotaryDim: 6, theta: 100, pastLen: 4 };
    const random = rng(5);
    const n = s.batch * s.seq * s.heads * s.headDim;
    const x = randomArray(n, random);
    const y = randomArray(n, random);
    const rx = rotaryRef(x, s);
    const rty = rotaryRef(y, s, true);
    let a = 0;
    let b = 0;
    for (let i = 0; i < n; i++) {
      a += rx[i] * y[i];
      b += x[i] * rty[i];
    }
    expect(Math.abs(a - b)).toBeLessThan(1e-12);
    // a rotation: the transpose undoes it, and dims past rotaryDim are untouched
    const back = rotaryRef(rx, s, true);
    expect(Math.max(...back.map((v, i) => Math.abs(v - x[i])))).toBeLessThan(1e-12);
    expect(rx[s.headDim - 1]).toBe(Math.fround(x[s.headDim - 1]));
  });
});

describe('rotary', () => {
  for (const s of CASES) {
    it(`forward and backward match float64 at ${tag(s)}`, async () => {
      const gpu = await testGpu();
      const random = rng(s.seq * 131 + s.headDim * 7 + s.rotaryDim + (s.pastLen ?? 0));
      const n = s.batch * s.seq * s.heads * s.headDim;
      const xData = randomArray(n, random, 2);
      const gData = randomArray(n, random);
      const table = createRotaryTable(gpu, s.theta, s.rotaryDim, (s.pastLen ?? 0) + s.seq);
      const shape = { batch: s.batch, seq: s.seq, heads: s.heads, headDim: s.headDim, pastLen: s.pastLen };
      const x = gpu.upload('x', [s.batch * s.seq, s.heads * s.headDim], xData);
      const g = gpu.upload('dx', [s.batch * s.seq, s.heads * s.headDim], gData);
      const leftPad = s.leftPad ? gpu.upload('left_pad', [s.batch], Uint32Array.from(s.leftPad), 'u32') : undefined;
      rotaryForward(gpu, x, table, shape, { leftPad });
      rotaryBackward(gpu, g, table, shape, { leftPad });
      const out = await gpu.readF32(x);
      const dx = await gpu.readF32(g);
      expect(compareTensors(`rotary.fwd ${tag(s)}`, out, rotaryRef(xData, s)).relError).toBeLessThan(1e-5);
      expect(compareTensors(`rotary.bwd ${tag(s)}`, dx, rotaryRef(gData, s, true)).relError).toBeLessThan(1e-5);
      // dims past rotaryDim pass through bit for bit
      for (let r = 0; r < s.batch * s.seq; r++) {
        for (let h = 0; h < s.heads; h++) {
          for (let d = s.rotaryDim; d < s.headDim; d++) {
            const i = (r * s.heads + h) * s.headDim + d;
            if (out[i] !== xData[i] || dx[i] !== gData[i]) throw new Error(`dim ${d} of row ${r} head ${h} changed`);
          }
        }
      }
    });
  }

  it('a left-padded sequence gets exactly the rotation it gets alone', async () => {
    // Sequence 1 of the batch is the same rows as a sequence run alone, 6 rows later: same positions.
    const gpu = await testGpu();
    const [heads, headDim, rotaryDim, seq, pad, pastLen] = [2, 80, 32, 20, 6, 9];
    const width = heads * headDim;
    const table = createRotaryTable(gpu, 10000, rotaryDim, pastLen + seq);
    const random = rng(77);
    const alone = randomArray((seq - pad) * width, random, 2);
    const batch = new Float32Array(2 * seq * width);
    batch.set(randomArray(seq * width, random, 2));
    batch.fill(Number.NaN, seq * width, (seq + pad) * width); // padding rows: NaN, which no other row may see
    batch.set(alone, (seq + pad) * width);
    const x = gpu.upload('x', [2 * seq, width], batch);
    const leftPad = gpu.upload('left_pad', [2], Uint32Array.of(0, pad), 'u32');
    rotaryForward(gpu, x, table, { batch: 2, seq, heads, headDim, pastLen }, { leftPad });
    const y = gpu.upload('y', [seq - pad, width], alone);
    rotaryForward(gpu, y, table, { batch: 1, seq: seq - pad, heads, headDim, pastLen });
    const padded = (await gpu.readF32(x)).subarray((seq + pad) * width);
    const c = compareTensors('rotary left-padded vs alone', padded, await gpu.readF32(y));
    expect(c.maxAbsDiff).toBe(0);
  });

  it('the table holds cos and sin of position * theta^(-2i/R) to f32 precision', () => {
    const t = rotaryTableData(10000, 32, 2048);
    const pos = 2047;
    const i = 5;
    const angle = pos * Math.pow(10000, -10 / 32);
    expect(t[(pos * 16 + i) * 2]).toBe(Math.fround(Math.cos(angle)));
    expect(t[(pos * 16 + i) * 2 + 1]).toBe(Math.fround(Math.sin(angle)));
  });

  it('refuses bad input with specific messages', async () => {
    const gpu = await testGpu();
    expect(() => rotaryTableData(10000, 7, 16)).toThrow(/rotaryDim must be a positive even integer, got 7/);
    const table = createRotaryTable(gpu, 10000, 32, 8);
    const x = gpu.tensor('q', [8, 160]);
    expect(() => rotaryForward(gpu, x, table, { batch: 1, seq: 8, heads: 2, headDim: 80, pastLen: 1 })).toThrow(
      /need a rotary table of 9 positions, this one has 8/,
    );
    expect(() => rotaryForward(gpu, x, table, { batch: 1, seq: 8, heads: 10, headDim: 16 })).toThrow(/rotaryDim 32 exceeds headDim 16/);
    expect(() => rotaryForward(gpu, x, table, { batch: 2, seq: 4, heads: 1, headDim: 80 })).toThrow(/q has shape \[8,160\], expected \[8,80\]/);
    const shape = { batch: 2, seq: 4, heads: 2, headDim: 80 };
    expect(() => rotaryForward(gpu, x, table, shape, { leftPad: gpu.tensor('pad', [3], 'u32') })).toThrow(/pad has shape \[3\], expected \[2\]/);
    expect(() => rotaryForward(gpu, x, table, shape, { leftPad: gpu.tensor('pad', [2]) })).toThrow(/pad is f32, expected u32/);
  });
});
