/**
 * The benchmark harness's logic without a GPU and without timing anything: the command line, the
 * statistics, the GPU-memory tracker (over a stand-in device), the table, the goals, the random
 * data, the shapes, and the results files turned into BENCHMARKS.md rows.
 */
import { describe, expect, it } from 'vitest';
import { BenchUsageError, parseBenchArgs, selected } from './args';
import { formatTable, GpuMemoryTracker, judge, summarize, type BenchRow } from './harness';
import { randomF16Words, randomInt8Words, randomTokens, uniformF32, XorShift32, WEIGHT_HALF_WIDTH } from './random';
import { insertRows, markdownRows, MARKERS, oursCell, parseResults, type ReferenceResults, type WebgpuResults } from './report';
import { benchShapes } from './shapes';
import { f16BitsToNumber } from '../../src/engine/kernels/weight-formats';

describe('bench command line', () => {
  it('defaults to every group at Phi-2 shapes with int8 weights', () => {
    expect(parseBenchArgs([])).toEqual({
      command: 'run',
      mode: 'full',
      filters: [],
      groups: ['kernels', 'model', 'train', 'weights'],
      out: null,
      scheme: 'int8',
      iters: null,
      browser: false,
      list: false,
      commit: null,
    });
  });

  it('reads every option, in both spellings', () => {
    const o = parseBenchArgs(['--quick', '--filter', 'matmul, attention', '--group=kernels,model', '--out', 'r.json', '--scheme', 'f16', '--iters=5', '--commit', 'abc']);
    expect(o).toMatchObject({ mode: 'quick', filters: ['matmul', 'attention'], groups: ['kernels', 'model'], out: 'r.json', scheme: 'f16', iters: 5, commit: 'abc' });
  });

  it('refuses what it does not know, saying what is wrong', () => {
    const bad: Array<[string[], RegExp]> = [
      [['--fast'], /unknown option --fast/],
      [['--out'], /--out needs a value/],
      [['--out', '--quick'], /--out needs a value/],
      [['--group', 'kernels,gpu'], /unknown group "gpu"/],
      [['--scheme', 'int4'], /--scheme must be int8 or f16/],
      [['--iters', '0'], /--iters must be a positive integer/],
      [['--iters', '2.5'], /--iters must be a positive integer/],
      [['--quick', '--quick'], /given twice/],
      [['--quick=yes'], /takes no value/],
      [['quick'], /unexpected argument "quick"/],
      [['--browser', '--group', 'weights'], /--browser runs only/],
      [['report'], /report needs --webgpu/],
      [['report', '--webgpu', 'a.json', '--quick'], /unknown option --quick/],
    ];
    for (const [argv, message] of bad) {
      expect(() => parseBenchArgs(argv), argv.join(' ')).toThrow(BenchUsageError);
      expect(() => parseBenchArgs(argv), argv.join(' ')).toThrow(message);
    }
  });

  it('answers --help anywhere on the line', () => {
    expect(parseBenchArgs(['--quick', '--help'])).toEqual({ command: 'help' });
    expect(parseBenchArgs(['report', '-h'])).toEqual({ command: 'help' });
  });

  it('parses the report command', () => {
    expect(parseBenchArgs(['report', '--webgpu', 'w.json', '--pytorch', 'p.json', '--append', 'BENCHMARKS.md'])).toEqual({
      command: 'report',
      webgpu: 'w.json',
      pytorch: 'p.json',
      commit: null,
      append: 'BENCHMARKS.md',
    });
  });

  it('selects cases by name or id', () => {
    const c = { name: 'matmul.int8.gemv.fc1 1x10240x2560', id: 'matmul.int8.gemv.fc1' };
    expect(selected([], c)).toBe(true);
    expect(selected(['gemv'], c)).toBe(true);
    expect(selected(['10240'], c)).toBe(true);
    expect(selected(['attention', 'lora'], c)).toBe(false);
    expect(selected(['train.step'], { name: 'train.step int8 r64 1x512' })).toBe(true);
  });
});

describe('statistics', () => {
  it('median, min and max of odd and even counts', () => {
    expect(summarize([5, 1, 3])).toEqual({ median: 3, min: 1, max: 5, count: 3 });
    expect(summarize([4, 1, 3, 2])).toEqual({ median: 2.5, min: 1, max: 4, count: 4 });
    expect(summarize([7])).toEqual({ median: 7, min: 7, max: 7, count: 1 });
    expect(() => summarize([])).toThrow(/no samples/);
  });
});

/** Just enough of GPUDevice and GPUBuffer for the tracker. */
function fakeDevice() {
  const destroyed: number[] = [];
  let next = 0;
  const device = {
    createBuffer(d: GPUBufferDescriptor) {
      const id = next++;
      return { size: d.size, id, destroy: () => destroyed.push(id) } as unknown as GPUBuffer;
    },
  };
  return { device: device as unknown as GPUDevice, destroyed };
}

describe('GPU memory tracker', () => {
  it('counts live bytes and the peak through createBuffer and destroy', () => {
    const { device, destroyed } = fakeDevice();
    const m = new GpuMemoryTracker(device);
    const a = device.createBuffer({ size: 100, usage: 0 });
    const b = device.createBuffer({ size: 50, usage: 0 });
    expect([m.live, m.peak]).toEqual([150, 150]);
    a.destroy();
    expect([m.live, m.peak]).toEqual([50, 150]);
    a.destroy(); // a second destroy is harmless and not counted twice
    expect(m.live).toBe(50);
    expect(destroyed).toEqual([0, 0]);
    m.resetPeak();
    expect(m.peak).toBe(50);
    device.createBuffer({ size: 30, usage: 0 });
    expect([m.live, m.peak]).toEqual([80, 80]);
    b.destroy();
    expect([m.live, m.peak]).toEqual([30, 80]);
  });

  it('a scope destroys the buffers made while it was open and still alive, and only those', () => {
    const { device, destroyed } = fakeDevice();
    const m = new GpuMemoryTracker(device);
    device.createBuffer({ size: 10, usage: 0 }); // 0: before the scope
    const outer = m.openScope();
    const x = device.createBuffer({ size: 20, usage: 0 }); // 1
    const inner = m.openScope();
    device.createBuffer({ size: 40, usage: 0 }); // 2
    x.destroy();
    expect(outer.buffers).toBe(1);
    expect(inner.buffers).toBe(1);
    inner.close();
    expect(destroyed).toEqual([1, 2]);
    device.createBuffer({ size: 80, usage: 0 }); // 3: after the inner scope closed
    outer.close();
    expect(destroyed).toEqual([1, 2, 3]);
    expect(m.live).toBe(10);
    expect(m.peak).toBe(90); // 10 + 80 after the inner scope freed its 40 and x its 20
  });
});

describe('table and goals', () => {
  const kernel: BenchRow = { name: 'matmul.int8.gemv.qkvo 1x2560x2560', ms: 0.01, gbps: 660.5, tflops: 1.31, timing: 'gpu-timestamps' };

  it('leaves out columns no row fills', () => {
    const table = formatTable([kernel]);
    const [head, rule, row] = table.split('\n');
    expect(head.split('|').map((s) => s.trim()).filter(Boolean)).toEqual(['case', 'ms', 'GB/s', 'TFLOP/s', 'timing']);
    expect(rule).toMatch(/^\|-+\|/);
    expect(row).toContain('661');
    expect(row).toContain('1.31');
  });

  it('judges goals only where they apply, and prints them', () => {
    const train: BenchRow = { name: 'train.step int8 r64 1x512', ms: 180, tokensPerSec: 2844, peakBytes: 5.2e9, timing: 'wall-clock' };
    const speed = judge(train, 'tokensPerSec', '>=', 2500, true);
    const memory = judge(train, 'peakBytes', '<=', 5e9, true);
    const skipped = judge(train, 'tokensPerSec', '>=', 2500, false);
    expect([speed.met, memory.met, skipped.met]).toEqual([true, false, null]);
    expect(judge(kernel, 'tokensPerSec', '>=', 1, true).met).toBeNull(); // the row has no such figure
    train.goals = [speed, memory, skipped];
    const row = formatTable([train]).split('\n')[2];
    expect(row).toContain('>= 2500 tok/s: met');
    expect(row).toContain('<= 4.66 GiB (5.0 GB): MISSED');
    expect(row).toContain('n/a here');
    expect(row).toContain('4.84 GiB');
  });
});

describe('random benchmark data', () => {
  it('is deterministic per seed and differs between seeds', () => {
    const a = new XorShift32(7);
    const b = new XorShift32(7);
    const xs = Array.from({ length: 5 }, () => a.nextU32());
    expect(Array.from({ length: 5 }, () => b.nextU32())).toEqual(xs);
    expect(new XorShift32(8).nextU32()).not.toBe(xs[0]);
    expect(new XorShift32(0).nextU32()).not.toBe(0); // a zero seed must not stick at zero
  });

  it('int8 words hold bytes in [-127, 127] and both signs', () => {
    const words = randomInt8Words(64, 256, 3);
    expect(words.length).toBe((64 * 256) / 4);
    const bytes = new Int8Array(words.buffer);
    expect(Math.min(...bytes)).toBeGreaterThanOrEqual(-127);
    expect(Math.max(...bytes)).toBeLessThanOrEqual(127);
    expect(bytes.some((x) => x < -100) && bytes.some((x) => x > 100)).toBe(true);
    expect(() => randomInt8Words(2, 6, 1)).toThrow(/multiple of 4/);
  });

  it('f16 words decode to values inside the weight range, spread over it', () => {
    const halves = new Uint16Array(randomF16Words(4096, 5).buffer);
    const values = Array.from(halves, f16BitsToNumber);
    expect(values.every((v) => Math.abs(v) <= WEIGHT_HALF_WIDTH * (1 + 2 ** -10))).toBe(true);
    const std = Math.sqrt(values.reduce((s, v) => s + v * v, 0) / values.length);
    expect(std).toBeGreaterThan(0.018);
    expect(std).toBeLessThan(0.022);
    expect(() => randomF16Words(3, 1)).toThrow(/whole words/);
  });

  it('floats and tokens stay in their ranges', () => {
    const f = uniformF32(1000, 9, 0.5);
    expect(f.every((v) => v >= -0.5 && v < 0.5)).toBe(true);
    const t = randomTokens(1000, 51200, 9);
    expect(t.every((v) => v < 51200)).toBe(true);
    expect(new Set(t).size).toBeGreaterThan(900);
  });
});

describe('benchmark shapes', () => {
  it('full is Phi-2 with the paper adapter; quick keeps heads of 80 and rotary 32', () => {
    const full = benchShapes('full');
    expect(full.model).toMatchObject({ hiddenSize: 2560, intermediateSize: 10240, vocabSize: 51200, numLayers: 32, numHeads: 32, headDim: 80, rotaryDim: 32 });
    expect([full.tokens, full.decodeContext, full.trainBatches]).toEqual([512, 512, [1, 4]]);
    expect(full.lora).toMatchObject({ r: 64, alpha: 64, dropout: 0.05, layers: 'all' });
    expect(full.lora.targets).toHaveLength(6);
    const quick = benchShapes('quick');
    expect(quick.model).toMatchObject({ headDim: 80, rotaryDim: 32 });
    expect(quick.model.hiddenSize).toBeLessThan(2560);
    // Import figures use Phi-2's real widths even when quick (fewer layers only).
    expect(quick.importConfigJson).toMatchObject({ hidden_size: 2560, intermediate_size: 10240, vocab_size: 51200, num_hidden_layers: 1 });
  });
});

const webgpu = (rows: BenchRow[], swiftshader = false): WebgpuResults => ({
  tool: 'webgpu',
  version: 1,
  date: '2026-05-01T10:00:00.000Z',
  gpu: 'nvidia hopper',
  swiftshader,
  mode: 'full',
  scheme: 'int8',
  commit: '0123456789abcdef0123',
  host: { node: 'v20', platform: 'linux', arch: 'x64', cpus: 16 },
  limits: {},
  features: [],
  rows,
});

const pytorch: ReferenceResults = {
  tool: 'pytorch',
  date: '2026-05-01T10:05:00Z',
  gpu: 'NVIDIA H100 80GB HBM3',
  versions: { torch: '2.11' },
  settings: {},
  rows: [
    { id: 'model.prefill', shape: '1x512', name: 'model.prefill bf16 1x512', variant: 'bf16', tokensPerSec: 9285 },
    { id: 'model.prefill', shape: '1x512', name: 'model.prefill fp32 1x512', variant: 'fp32', tokensPerSec: 5195 },
    { id: 'model.prefill', shape: '1x32', name: 'model.prefill bf16 1x32', variant: 'bf16', tokensPerSec: 1 },
    { id: 'train.step', shape: '1x512', name: 'train.step bf16 r64 1x512', variant: 'bf16', tokensPerSec: 2565, peakBytes: 10.7 * 2 ** 30 },
  ],
};

describe('results files and BENCHMARKS.md rows', () => {
  const prefill: BenchRow = { id: 'model.prefill', shape: '1x512', name: 'model.prefill int8 1x512', ms: 90, tokensPerSec: 5689, timing: 'wall-clock' };
  const train: BenchRow = {
    id: 'train.step',
    shape: '1x512',
    name: 'train.step int8 r64 1x512',
    ms: 200,
    tokensPerSec: 2560,
    peakBytes: 4.5 * 2 ** 30,
    estimateBytes: 4.4 * 2 ** 30,
    goals: [{ metric: 'tokensPerSec', op: '>=', target: 2500, met: true }],
    timing: 'wall-clock',
  };
  const kernel: BenchRow = { id: 'matmul.int8.gemv.qkvo', shape: '1x2560x2560', name: 'matmul.int8.gemv.qkvo 1x2560x2560', ms: 0.012, gbps: 550, tflops: 1.1, timing: 'gpu-timestamps' };
  const load: BenchRow = { id: 'weights.load.node', shape: 'x', name: 'weights.load int8 fake-indexeddb → GPU (node)', ms: 6000, mbps: 512, timing: 'wall-clock' };

  it('pairs each of our rows with PyTorch rows of the same id and shape', () => {
    const rows = markdownRows(webgpu([prefill, train, kernel]), pytorch, null);
    expect(rows).toHaveLength(3);
    const cells = (line: string) => line.split(' | ').map((c) => c.replace(/^\| |\s\|$/g, ''));
    const [p, t, k] = rows.map(cells);
    expect(p.slice(0, 4)).toEqual(['2026-05-01', 'NVIDIA H100 80GB HBM3', '0123456789ab', 'model.prefill int8 1x512']);
    expect(p[4]).toBe('5689 tok/s, 90.000 ms');
    expect(p[5]).toBe('bf16 9285 tok/s; fp32 5195 tok/s');
    expect(t[4]).toBe('2560 tok/s, peak 4.50 GiB (estimate 4.40 GiB), 200.000 ms');
    expect(t[5]).toBe('bf16 2565 tok/s, peak 10.70 GiB');
    expect(t[6]).toBe('>= 2500 tok/s: met');
    expect(k[5]).toBe('—');
    expect(k[4]).toBe('1.10 TFLOP/s, 550 GB/s, 0.012 ms');
  });

  it('compares our allocated training memory with the peak of PyTorch training steps', () => {
    const memory: BenchRow = { id: 'train.memory', shape: '1x512', name: 'train.memory int8 r64 1x512', ms: 40, peakBytes: 4.58 * 2 ** 30, timing: 'wall-clock' };
    const [row] = markdownRows(webgpu([memory]), pytorch, null);
    expect(row).toContain('| train.memory int8 r64 1x512 | peak 4.58 GiB | bf16 peak 10.70 GiB |');
    const noPeaks = { ...pytorch, rows: pytorch.rows.map((r) => ({ ...r, peakBytes: undefined })) };
    expect(markdownRows(webgpu([memory]), noPeaks, null)[0]).toContain('| — |');
  });

  it('from a SwiftShader run keeps only the rows that do not depend on the GPU, marked as this machine', () => {
    const memory: BenchRow = { ...train, id: 'train.memory', name: 'train.memory int8 r64 1x512', tokensPerSec: undefined };
    const rows = markdownRows(webgpu([prefill, load, train, memory], true), null, 'feedbeef');
    expect(rows).toHaveLength(2);
    expect(rows[0]).toContain('this machine (CPU; SwiftShader)');
    expect(rows[0]).toContain('feedbeef');
    expect(rows[0]).toContain('512 MB/s');
    expect(rows[1]).toContain('train.memory');
    // A full hash is shortened, keeping a suffix that says the tree had changes.
    expect(markdownRows(webgpu([load], true), null, '0123456789abcdef0123-dirty')[0]).toContain('| 0123456789ab-dirty |');
  });

  it('keeps dispatch counts and decode CPU time from a SwiftShader run, with their goals and without a time', () => {
    const dispatches: BenchRow = { id: 'model.dispatches', shape: 'decode ctx512', name: 'model.dispatches int8 decode ctx512', ms: 6, dispatches: 164, submits: 2, timing: 'wall-clock' };
    dispatches.goals = [judge(dispatches, 'dispatches', '<=', 170, true)];
    const cpu: BenchRow = { id: 'model.decode.cpu', shape: 'b1 ctx512', name: 'model.decode.cpu int8 b1 ctx512', ms: 1.9, cpuMsMin: 1.25, cpuMsMedian: 1.9, timing: 'wall-clock' };
    cpu.goals = [judge(cpu, 'cpuMsMin', '<=', 1.5, true)];
    const rows = markdownRows(webgpu([prefill, dispatches, cpu], true), null, 'feedbeef');
    expect(rows).toHaveLength(2);
    expect(rows[0]).toContain('| model.dispatches int8 decode ctx512 | 164 dispatches, 2 submits | — | <= 170 dispatches: met |');
    expect(rows[1]).toContain('| CPU 1.250 ms best, 1.900 ms median | — | <= 1.5 ms of CPU: met |');
    expect(formatTable([dispatches, cpu])).toMatch(/164 \(2 submits\)[\s\S]*1\.250 \/ 1\.900/);
  });

  it('escapes pipes inside cells', () => {
    const rows = markdownRows(webgpu([{ ...prefill, name: 'a | b' }]), null, null);
    expect(rows[0]).toContain('a \\| b');
  });

  it('inserts rows at the top of the marked table and drops the placeholder', () => {
    const md = [
      '# Benchmarks',
      MARKERS.gpu,
      '| date | GPU | commit | case | ours | PyTorch | note |',
      '|------|-----|--------|------|------|---------|------|',
      '| — | — | — | no run yet | | | |',
      '',
      MARKERS.machine,
      '| date | GPU | commit | case | ours | PyTorch | note |',
      '|---|---|---|---|---|---|---|',
      '| old | row |',
      '',
      'after',
    ].join('\n');
    const once = insertRows(md, MARKERS.gpu, ['| new 1 |', '| new 2 |']);
    expect(once.split('\n').slice(3, 7)).toEqual(['|------|-----|--------|------|------|---------|------|', '| new 1 |', '| new 2 |', '']);
    const twice = insertRows(once, MARKERS.machine, ['| newer |']);
    expect(twice.split('\n').slice(-5)).toEqual(['|---|---|---|---|---|---|---|', '| newer |', '| old | row |', '', 'after']);
    expect(() => insertRows('# nothing', MARKERS.gpu, [])).toThrow(/marker/);
    expect(() => insertRows(`${MARKERS.gpu}\n\n## next\n| a |\n|---|`, MARKERS.gpu, [])).toThrow(/no table header/);
  });

  it('reads results files and says what is wrong with bad ones', () => {
    const good = webgpu([prefill]);
    expect(parseResults(JSON.stringify(good), 'w.json')).toEqual(good);
    expect(parseResults(JSON.stringify(pytorch), 'p.json').tool).toBe('pytorch');
    expect(() => parseResults('GPU: nvidia\n{', 'w.json')).toThrow(/w.json: not JSON/);
    expect(() => parseResults('{"tool":"jax","date":"d","gpu":"g","rows":[]}', 'x.json')).toThrow(/"tool" is "jax"/);
    expect(() => parseResults('{"tool":"webgpu","date":"d","gpu":"g"}', 'x.json')).toThrow(/"rows" array/);
    expect(() => parseResults('{"tool":"webgpu","date":"d","gpu":"g","rows":[{"name":"a"}]}', 'x.json')).toThrow(/row 0 \(a\) has no "ms"/);
    expect(() => parseResults('{"tool":"pytorch","date":"d","gpu":"g","rows":[{"name":"a","id":"x"}]}', 'x.json')).toThrow(/needs "id", "shape" and "variant"/);
  });

  it('formats figures of every kind', () => {
    expect(oursCell(load)).toBe('512 MB/s, 6.00 s');
    expect(oursCell({ name: 'x', ms: 1.5, tokensPerSec: 12.345, timing: 'wall-clock' })).toBe('12.3 tok/s, 1.500 ms');
  });
});

describe('weights rows', async () => {
  const { weightsRows } = await import('./weights.bench');
  const s = benchShapes('full');
  const run = { modelId: 'm', inputBytes: 5.56e9, storedBytes: 3.05e9, conversionSeconds: null, importSeconds: 25, records: 800, loadSeconds: 6.1, gpuBytes: 3.05e9 };

  it('judge import and load at full size, and the load after a reload when there is one', () => {
    const rows = weightsRows({ ...run, reloadSeconds: 5 }, 'chromium', s, 'int8');
    expect(rows.map((r) => r.id)).toEqual(['weights.import.chromium', 'weights.load.chromium', 'weights.load.chromium.reload']);
    const [imported, loaded, reloaded] = rows;
    expect(imported.mbps).toBeCloseTo(222.4, 1);
    expect(imported.goals![0].met).toBe(true);
    expect(loaded.mbps).toBeCloseTo(500, 0);
    expect(loaded.goals![0].met).toBe(true);
    expect(reloaded.mbps).toBeCloseTo(610, 0);
    expect(reloaded.goals![0]).toMatchObject({ target: 500, met: true });
    expect(reloaded.notes!.at(-1)).toMatch(/freshly loaded page/);
    expect(weightsRows({ ...run, loadSeconds: 7 }, 'node', s, 'int8').map((r) => [r.id, r.goals![0].met])).toEqual([
      ['weights.import.node', true],
      ['weights.load.node', false],
    ]);
  });
});
