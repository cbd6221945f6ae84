/**
 * The int8-accuracy report without a GPU: the loss-curve chart (its points land where the values say),
 * the tables BENCHMARKS.md shows, and the checks on the curve files the runs wrote.
 */
import { describe, expect, it } from 'vitest';
import { BenchUsageError, parseBenchArgs } from './args';
import { lossCurvesSvg, niceTicks, runningMean } from './curve-chart';
import { comparisonSvg, comparisonTable, curvesByModel, readCurveFiles, type Curve } from './int8-accuracy.bench';

const curve = (model: string, compute: 'f32' | 'int8', losses: number[]): Curve => ({ model, compute, losses, ms: 0 });

/** Every polyline's points, as numbers. */
function polylines(svg: string): Array<Array<[number, number]>> {
  return [...svg.matchAll(/<polyline[^>]* points="([^"]*)"/g)].map((m) => m[1].split(' ').map((p) => p.split(',').map(Number) as [number, number]));
}

describe('runningMean', () => {
  it('averages the last n values, fewer at the start', () => {
    expect(runningMean([1, 2, 3, 4, 5], 2)).toEqual([1, 1.5, 2.5, 3.5, 4.5]);
    expect(runningMean([4, 8], 5)).toEqual([4, 6]);
    expect(runningMean([3, 1, 2], 1)).toEqual([3, 1, 2]);
  });
});

describe('niceTicks', () => {
  it('covers the range with round steps', () => {
    expect(niceTicks(1, 200, 4)).toEqual([50, 100, 150, 200]);
    expect(niceTicks(4.2, 6.7, 4)).toEqual([4.5, 5, 5.5, 6, 6.5]);
    expect(niceTicks(-0.009, 0.009, 4)).toEqual([-0.005, 0, 0.005]);
  });

  it('gives the one value of an empty range', () => {
    expect(niceTicks(3, 3)).toEqual([3]);
  });
});

describe('lossCurvesSvg', () => {
  const panel = { title: 'golden <a&b>', curves: [{ label: 'f32', losses: [6, 5, 4, 3] }, { label: 'int8', losses: [6, 5.5, 4, 3.5] }] };

  it('draws each curve raw and smoothed, and the gap to the first curve, with the values where they belong', () => {
    const svg = lossCurvesSvg([panel], { smooth: 2 });
    const lines = polylines(svg);
    // f32 raw, f32 mean, int8 raw, int8 mean, then int8 - f32.
    expect(lines).toHaveLength(5);
    const [f32Raw, , int8Raw, , gap] = lines;
    expect(f32Raw).toHaveLength(4);
    // Steps run left to right across the panel, lower loss is lower on the page (larger y).
    expect(f32Raw[3][0]).toBeGreaterThan(f32Raw[0][0]);
    expect(f32Raw[3][1]).toBeGreaterThan(f32Raw[0][1]);
    // Equal losses share a point; the gap is zero at steps 1 and 3 and positive (up) at 2 and 4.
    expect(int8Raw[0]).toEqual(f32Raw[0]);
    expect(int8Raw[1][1]).toBeLessThan(f32Raw[1][1]);
    expect(gap[0][1]).toBeCloseTo(gap[2][1], 1);
    expect(gap[1][1]).toBeLessThan(gap[0][1]);
    expect(svg).toContain('golden &lt;a&amp;b&gt;');
    expect(svg).toContain('int8 − f32');
  });

  it('draws only the raw curves without smoothing, and a floor line where the losses come near it', () => {
    const svg = lossCurvesSvg([panel], { floor: { value: 3.1, label: 'best 3.1' } });
    expect(polylines(svg)).toHaveLength(3);
    expect(svg).toContain('best 3.1');
    expect(lossCurvesSvg([panel], { floor: { value: 1.28, label: 'best 1.28' } })).not.toContain('best 1.28');
  });

  it('refuses curves it cannot draw honestly', () => {
    expect(() => lossCurvesSvg([])).toThrow(/no panels/);
    expect(() => lossCurvesSvg([{ title: 'x', curves: [{ label: 'a', losses: [1, 2] }, { label: 'b', losses: [1] }] }])).toThrow(/same, non-zero number of steps/);
    expect(() => lossCurvesSvg([{ title: 'x', curves: [{ label: 'a', losses: [1, Number.NaN] }] }])).toThrow(/non-finite/);
  });
});

describe('the int8-accuracy comparison', () => {
  const f32 = curve('golden', 'f32', [6, 5, 4, 3]);
  const int8 = curve('golden', 'int8', [6.1, 5, 3.9, 3.2]);

  it('tables the means over each window, their difference and the per-step gap', () => {
    const table = comparisonTable('golden', f32, int8, 2);
    expect(table.split('\n').slice(0, 4)).toEqual(['| golden: steps | f32 | int8 | int8 − f32 |', '|---|---:|---:|---:|', '| 1-2 | 5.5000 | 5.5500 | +0.0500 |', '| 3-4 | 3.5000 | 3.5500 | +0.0500 |']);
    expect(table).toContain('per-step |int8 − f32| mean 0.1000, largest 0.2000');
    expect(table).toContain('last step 3.0000 / 3.2000');
  });

  it('pairs the curves of each model, f32 first, whatever order the files came in', () => {
    const byModel = curvesByModel([int8, curve('tiny-phi', 'int8', [11]), f32, curve('tiny-phi', 'f32', [11.5])]);
    expect([...byModel.keys()]).toEqual(['golden', 'tiny-phi']);
    expect(byModel.get('golden')!.map((c) => c.compute)).toEqual(['f32', 'int8']);
    expect(polylines(comparisonSvg(byModel))).toHaveLength(2 * 5);
  });

  it('says which curve is missing or unfinished', () => {
    expect(() => curvesByModel([f32])).toThrow(/golden needs exactly one f32 and one int8 curve, got f32/);
    expect(() => curvesByModel([f32, curve('golden', 'int8', [1, 2])])).toThrow(/4 and 2 steps/);
  });

  it('reads the files the runs wrote and refuses files of other settings', () => {
    const options = { steps: 4, batch: 2, seq: 32, examples: 256 };
    const file = (c: Curve, o = options) => JSON.stringify({ options: o, chainEntropy: 1.28, curves: [c] });
    const read = readCurveFiles([{ name: 'a.json', text: file(f32) }, { name: 'b.json', text: file(int8) }]);
    expect(read.options).toEqual(options);
    expect(read.curves.map((c) => c.compute)).toEqual(['f32', 'int8']);
    expect(() => readCurveFiles([{ name: 'a.json', text: file(f32) }, { name: 'b.json', text: file(int8, { ...options, seq: 64 }) }])).toThrow(/b\.json: run with .*compare runs of the same settings/);
    expect(() => readCurveFiles([{ name: 'c.json', text: '{' }])).toThrow(/c\.json: not JSON/);
    expect(() => readCurveFiles([{ name: 'd.json', text: '{}' }])).toThrow(/d\.json: no options and curves/);
  });
});

describe('bench curves command line', () => {
  it('takes the curve files and an optional chart path', () => {
    expect(parseBenchArgs(['curves', 'a.json', '--svg', 'out.svg', 'b.json'])).toEqual({ command: 'curves', files: ['a.json', 'b.json'], svg: 'out.svg' });
    expect(parseBenchArgs(['curves', 'a.json'])).toEqual({ command: 'curves', files: ['a.json'], svg: null });
  });

  it('needs at least one file and knows only --svg', () => {
    expect(() => parseBenchArgs(['curves', '--svg', 'x.svg'])).toThrow(BenchUsageError);
    expect(() => parseBenchArgs(['curves', 'a.json', '--out', 'x'])).toThrow(/unknown option --out/);
  });
});
