import { acquireGpu, type GpuContext } from '../../src/engine/gpu/device';
import { KernelEncoder, type DispatchTimer, type RecordedPass } from '../../src/engine/gpu/encoder';
import { PipelineCache } from '../../src/engine/gpu/pipelines';
import { GpuRuntime } from '../../src/engine/gpu/runtime';
import { DTYPE_BYTES, numel, tensorBytes, type GpuTensor } from '../../src/engine/gpu/tensor';
import { TimestampProfiler } from '../../src/engine/gpu/timing';
import { nodePlatform } from '../../src/engine/platform/node';
import type { Platform } from '../../src/engine/platform/types';

/**
 * The benchmark harness: one device, a timestamp profiler, a tracker of GPU memory, and a table.
 *
 * Kernel cases (BenchCase) record their dispatches `iters` times after `warmup` runs; the reported
 * time is the median per iteration of the GPU timestamps (or of the wall clock, record → submit →
 * done, where timestamps are missing or the case asks for it). Each case runs on a fresh GpuRuntime
 * (its own encoder and per-runtime scratch; only compiled pipelines are shared) and every buffer it
 * created is destroyed afterwards, so cases neither share state nor inflate each other's memory figures.
 *
 * Larger measurements (a model's prefill, a training step, an import) are plain async functions that
 * return BenchRows; they use the helpers below for iteration statistics, scopes and profiles.
 */
export interface BenchCase {
  name: string;
  /** A stable key for reports ('matmul.int8.gemm'); the name adds the shape. */
  id?: string;
  /** The shape in words ('512x2560x2560'), so that reports pair only like with like. */
  shape?: string;
  /** Work per iteration, for rates: bytes moved and/or floating-point operations, tokens. */
  bytes?: number;
  flops?: number;
  tokens?: number;
  /** 'gpu' (default): the sum of the dispatches' GPU timestamps; 'wall': record → submit → done. */
  timing?: 'gpu' | 'wall';
  setup(gpu: GpuRuntime): Promise<(gpu: GpuRuntime) => void> | ((gpu: GpuRuntime) => void);
}

/** A case named as reports name cases: its id, then its shape. */
export function namedCase(id: string, shape: string, c: Omit<BenchCase, 'id' | 'shape' | 'name'>): BenchCase {
  return { id, shape, name: `${id} ${shape}`, ...c };
}

/** A target figure (from the issues) and whether this run met it. */
export interface Goal {
  metric: 'tokensPerSec' | 'mbps' | 'peakBytes' | 'dispatches' | 'cpuMsMin' | 'cpuMs';
  op: '>=' | '<=';
  target: number;
  /** null where the goal does not apply: small shapes, or a CPU emulating the GPU. */
  met: boolean | null;
}

export interface KernelTime {
  kernel: string;
  ms: number;
  count: number;
}

export interface BenchRow {
  name: string;
  id?: string;
  group?: string;
  shape?: string;
  /** Median milliseconds per iteration. */
  ms: number;
  minMs?: number;
  maxMs?: number;
  iters?: number;
  gbps?: number;
  tflops?: number;
  tokensPerSec?: number;
  /** Megabytes (10^6 bytes) per second: imports and loads. */
  mbps?: number;
  /** The most bytes of GPU buffers alive at once during the measurement, weights included. */
  peakBytes?: number;
  /** What src/shared/train-memory.ts predicts for the same configuration, beside the measured peak. */
  estimateBytes?: number;
  /** Dispatches and command-buffer submits of one pass (model.dispatches). */
  dispatches?: number;
  submits?: number;
  /** CPU milliseconds to record and encode one decode step: best and median (model.decode.cpu). */
  cpuMsMin?: number;
  cpuMsMedian?: number;
  /** CPU milliseconds to record (and submit) one LoRA training step, median of the timed steps (train.step). */
  cpuMs?: number;
  goals?: Goal[];
  /** GPU time by kernel for one iteration, largest first (where timestamps exist). */
  breakdown?: KernelTime[];
  notes?: string[];
  timing: 'gpu-timestamps' | 'wall-clock';
}

/** Passes timestamp requests to the profiler only while enabled, so one runtime can run timed and untimed. */
export class GatedTimer implements DispatchTimer {
  enabled = false;

  constructor(private readonly profiler: TimestampProfiler) {}

  passTimestamps(label: string): GPUComputePassTimestampWrites | undefined {
    return this.enabled ? this.profiler.passTimestamps(label) : undefined;
  }
}

/**
 * Counts the bytes of every GPU buffer alive, by wrapping device.createBuffer and each buffer's
 * destroy: the peak is what the configuration really allocated (weights, activations, scratch,
 * staging), not an estimate. Scopes collect the buffers created while they are open so that a case
 * can free everything it made.
 */
export class GpuMemoryTracker {
  live = 0;
  peak = 0;
  private readonly sizes = new Map<GPUBuffer, number>();
  private readonly scopes = new Set<Set<GPUBuffer>>();

  constructor(device: GPUDevice) {
    const create = device.createBuffer.bind(device);
    device.createBuffer = (descriptor: GPUBufferDescriptor): GPUBuffer => {
      const buffer = create(descriptor);
      this.track(buffer, descriptor.size);
      return buffer;
    };
  }

  private track(buffer: GPUBuffer, size: number): void {
    const destroy = buffer.destroy.bind(buffer);
    this.sizes.set(buffer, size);
    for (const scope of this.scopes) scope.add(buffer);
    this.live += size;
    this.peak = Math.max(this.peak, this.live);
    buffer.destroy = () => {
      const bytes = this.sizes.get(buffer);
      if (bytes !== undefined) {
        this.sizes.delete(buffer);
        this.live -= bytes;
        for (const scope of this.scopes) scope.delete(buffer);
      }
      destroy();
    };
  }

  /** Starts a new peak from what is alive now. */
  resetPeak(): void {
    this.peak = this.live;
  }

  /** Collects the buffers created from now on; close() destroys those still alive. */
  openScope(): { close(): void; readonly buffers: number } {
    const created = new Set<GPUBuffer>();
    this.scopes.add(created);
    return {
      close: () => {
        this.scopes.delete(created);
        for (const b of [...created]) b.destroy();
      },
      get buffers() {
        return created.size;
      },
    };
  }
}

export interface BenchEnv {
  /** A runtime for callers of the original API; cases get fresh ones (freshRuntime). */
  gpu: GpuRuntime;
  profiler: TimestampProfiler | null;
  describe: string;
  ctx: GpuContext;
  timer: GatedTimer | null;
  memory: GpuMemoryTracker;
  /** The adapter is SwiftShader (Vulkan on the CPU): figures prove the harness only. */
  swiftshader: boolean;
  /** The Node platform (Dawn, an in-memory IndexedDB). */
  platform: Platform;
}

export async function openBenchGpu(): Promise<BenchEnv> {
  // Dawn rounds timestamps to 2^16 ns by default (a browser's defence against timing attacks); a
  // GEMV at decode takes a few microseconds, so the benchmarks turn the rounding off.
  const platform = await nodePlatform({ dawnOptions: ['enable-dawn-features=allow_unsafe_apis', 'disable-dawn-features=timestamp_quantization'] });
  const ctx = await acquireGpu(platform.gpu, platform.gpuMissingReason);
  // Installed before anything else allocates, so every buffer is counted.
  const memory = new GpuMemoryTracker(ctx.device);
  const profiler = ctx.hasTimestamps ? new TimestampProfiler(ctx.device) : null;
  const timer = profiler ? new GatedTimer(profiler) : null;
  const a = ctx.report.adapter;
  const describe = [a.vendor, a.architecture, a.device, a.description].filter(Boolean).join(' ');
  const base = { profiler, describe, ctx, timer, memory, platform, swiftshader: /swiftshader/i.test(describe) };
  return { ...base, gpu: freshRuntime(base) };
}

/**
 * A runtime whose pipeline cache is shared with others: compiled pipelines hold no buffers, and
 * compiling every shader once per run (not once per case) keeps SwiftShader runs short.
 */
class SharedPipelinesRuntime extends GpuRuntime {
  override readonly pipelines: PipelineCache;

  constructor(ctx: GpuContext, timer: DispatchTimer | undefined, pipelines: PipelineCache) {
    super(ctx, timer);
    this.pipelines = pipelines;
  }
}

/**
 * An encoder that counts dispatches and drops them: kernels still validate their arguments, create
 * their pipelines and allocate every buffer they need, but nothing reaches the GPU. What a
 * configuration allocates can so be measured at full size on any device, SwiftShader included.
 */
class AllocationOnlyEncoder extends KernelEncoder {
  private pendingWork = false;

  override dispatch(): void {
    this.dispatches++;
    this.recorded++;
    this.pendingWork = true;
  }

  override copy(): void {
    this.pendingWork = true;
  }

  override submit(): void {
    if (this.isCapturing) return;
    if (this.pendingWork) this.submits++;
    this.pendingWork = false;
    this.dispatches = 0;
    this.replayed.clear();
  }

  private readonly replayed = new Set<RecordedPass>();

  override replay(pass: RecordedPass): void {
    if (this.isCapturing) throw new Error('replay: not inside a capture');
    // As KernelEncoder.replay: a pass already waiting in this submit submits first.
    if (this.replayed.has(pass)) this.submit();
    this.replayed.add(pass);
    this.recorded += pass.dispatches;
    this.pendingWork = true;
  }

  protected override execute(): void {}
}

/** An encoder that does all the CPU work of a submit (bind groups, encoding, finish) and drops the command buffer. */
class RecordAndEncodeEncoder extends KernelEncoder {
  protected override execute(): void {}
}

/** Reads give zeros of the tensor's size: nothing ran, but a generation loop can step through. */
async function zeros(t: GpuTensor): Promise<ArrayBuffer> {
  return new ArrayBuffer(numel(t.shape) * DTYPE_BYTES[t.dtype]);
}

class AllocationOnlyRuntime extends SharedPipelinesRuntime {
  override readonly encoder: KernelEncoder;

  constructor(ctx: GpuContext, pipelines: PipelineCache) {
    super(ctx, undefined, pipelines);
    this.encoder = new AllocationOnlyEncoder(ctx.device);
  }

  override read(t: GpuTensor): Promise<ArrayBuffer> {
    this.encoder.submit();
    return zeros(t);
  }
}

/**
 * A runtime whose CPU does everything for each submit, up to finished command buffers, which it
 * drops: what recording and encoding cost, measured without the GPU's time (model.decode.cpu).
 */
class RecordAndEncodeRuntime extends SharedPipelinesRuntime {
  override readonly encoder: KernelEncoder;
  private copyTarget: GpuTensor | null = null;

  constructor(ctx: GpuContext, pipelines: PipelineCache) {
    super(ctx, undefined, pipelines);
    this.encoder = new RecordAndEncodeEncoder(ctx.device);
  }

  /** The read's copy is encoded as a real read's is (into a buffer that is never mapped); the data is zeros. */
  override read(t: GpuTensor): Promise<ArrayBuffer> {
    const bytes = tensorBytes(t.shape, t.dtype);
    if (!this.copyTarget || this.copyTarget.buffer.size < bytes) {
      this.copyTarget?.buffer.destroy();
      this.copyTarget = this.tensor('read-target', [Math.max(bytes, 4096) / 4], 'u32');
    }
    this.encoder.copy(t, this.copyTarget, bytes);
    this.encoder.submit();
    return zeros(t);
  }
}

const sharedPipelines = new WeakMap<GPUDevice, PipelineCache>();

/** What a runtime does with what is recorded: run it (default), count it only, or encode it and drop it. */
export type RuntimeMode = 'run' | 'allocation-only' | 'record-and-encode';

/**
 * A new runtime on the bench device: its own encoder and per-runtime scratch buffers, shared
 * pipelines. 'allocation-only' gives one whose dispatches are counted and dropped, 'record-and-encode'
 * one that encodes and drops them (see above); in both, reads give zeros.
 */
export function freshRuntime(env: Pick<BenchEnv, 'ctx' | 'timer'>, options: { mode?: RuntimeMode } = {}): GpuRuntime {
  let pipelines = sharedPipelines.get(env.ctx.device);
  if (!pipelines) {
    pipelines = new PipelineCache(env.ctx.device);
    sharedPipelines.set(env.ctx.device, pipelines);
  }
  switch (options.mode ?? 'run') {
    case 'allocation-only':
      return new AllocationOnlyRuntime(env.ctx, pipelines);
    case 'record-and-encode':
      return new RecordAndEncodeRuntime(env.ctx, pipelines);
    default:
      return new SharedPipelinesRuntime(env.ctx, env.timer ?? undefined, pipelines);
  }
}

export interface Samples {
  median: number;
  min: number;
  max: number;
  count: number;
}

export function summarize(values: readonly number[]): Samples {
  if (!values.length) throw new Error('summarize: no samples');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { median, min: sorted[0], max: sorted[sorted.length - 1], count: sorted.length };
}

/** A row's times from its samples: the median, the best, the worst and how many. */
export function sampleTimes(s: Samples): Pick<BenchRow, 'ms' | 'minMs' | 'maxMs' | 'iters'> {
  return { ms: s.median, minMs: s.min, maxMs: s.max, iters: s.count };
}

/**
 * Runs `once` warmup + iters times and returns the statistics of the measured runs' milliseconds.
 * Past `budgetMs` of measuring it stops early (keeping at least one sample), so a slow device or
 * SwiftShader at full size cannot hold a time-limited GPU session hostage.
 */
export async function timeWall(iters: number, warmup: number, once: () => Promise<void>, budgetMs = Infinity): Promise<Samples> {
  for (let i = 0; i < warmup; i++) await once();
  const ms: number[] = [];
  const start = performance.now();
  for (let i = 0; i < iters && (i === 0 || performance.now() - start < budgetMs); i++) {
    const t0 = performance.now();
    await once();
    ms.push(performance.now() - t0);
  }
  return summarize(ms);
}

/**
 * GPU time of one recording, by kernel: every dispatch in its own timed pass. Null without
 * timestamps, or when the recording has more dispatches than the profiler holds in one submit.
 */
export async function profileDispatches(env: BenchEnv, gpu: GpuRuntime, record: () => void): Promise<{ totalMs: number; dispatches: number; byKernel: KernelTime[] } | null> {
  if (!env.profiler || !env.timer) return null;
  await gpu.finish();
  await env.profiler.collect();
  env.timer.enabled = true;
  let dispatches = 0;
  try {
    const before = gpu.encoder.recorded;
    record();
    dispatches = gpu.encoder.recorded - before;
    await gpu.finish();
  } finally {
    env.timer.enabled = false;
  }
  const spans = await env.profiler.collect();
  if (spans.length < dispatches) return null;
  const byName = new Map<string, KernelTime>();
  let total = 0;
  for (const [label, ns] of spans) {
    // Pipeline labels are "shader:entry:constants"; the shader's name says which kernel it is.
    const kernel = label.split(':')[0];
    const k = byName.get(kernel) ?? { kernel, ms: 0, count: 0 };
    k.ms += ns / 1e6;
    k.count++;
    byName.set(kernel, k);
    total += ns / 1e6;
  }
  return { totalMs: total, dispatches, byKernel: [...byName.values()].sort((a, b) => b.ms - a.ms) };
}

/** Times a kernel case (see the top of this file); past `budgetMs` of measuring it stops early. */
export async function runCase(env: BenchEnv, c: BenchCase, iters = 20, warmup = 3, budgetMs = Infinity): Promise<BenchRow> {
  const scope = env.memory.openScope();
  const gpu = freshRuntime(env);
  const notes: string[] = [];
  try {
    const record = await c.setup(gpu);
    for (let i = 0; i < warmup; i++) record(gpu);
    await gpu.finish();
    let timed = c.timing !== 'wall' && env.profiler !== null && env.timer !== null;
    await env.profiler?.collect();
    const perIter: number[] = [];
    const start = performance.now();
    for (let i = 0; i < iters && (perIter.length === 0 || performance.now() - start < budgetMs); i++) {
      if (env.timer) env.timer.enabled = timed;
      const t0 = performance.now();
      const before = gpu.encoder.recorded;
      record(gpu);
      const dispatches = gpu.encoder.recorded - before;
      await gpu.finish();
      const wall = performance.now() - t0;
      if (env.timer) env.timer.enabled = false;
      if (!timed) {
        perIter.push(wall);
        continue;
      }
      const spans = await env.profiler!.collect();
      if (spans.length < dispatches) {
        // Every iteration has the same dispatches: this happens on the first, which is dropped.
        timed = false;
        notes.push(`${dispatches} dispatches exceed the profiler's capacity: wall-clock times`);
        continue;
      }
      perIter.push(spans.reduce((sum, [, ns]) => sum + ns, 0) / 1e6);
    }
    if (!perIter.length) {
      const t0 = performance.now();
      record(gpu);
      await gpu.finish();
      perIter.push(performance.now() - t0);
    }
    const samples = summarize(perIter);
    const s = samples.median / 1e3;
    return {
      name: c.name,
      id: c.id,
      shape: c.shape,
      ...sampleTimes(samples),
      gbps: c.bytes ? c.bytes / s / 1e9 : undefined,
      tflops: c.flops ? c.flops / s / 1e12 : undefined,
      tokensPerSec: c.tokens ? c.tokens / s : undefined,
      notes: notes.length ? notes : undefined,
      timing: timed ? 'gpu-timestamps' : 'wall-clock',
    };
  } finally {
    if (env.timer) env.timer.enabled = false;
    await gpu.finish();
    scope.close();
  }
}

/** Decimal units for rates, binary for memory (as GPU memory is usually quoted). */
export function formatBytes(bytes: number): string {
  const gib = bytes / 2 ** 30;
  return gib >= 1 ? `${gib.toFixed(2)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

export function formatGoal(g: Goal): string {
  const unit = { tokensPerSec: ' tok/s', mbps: ' MB/s', peakBytes: '', dispatches: ' dispatches', cpuMsMin: ' ms of CPU', cpuMs: ' ms of CPU' }[g.metric];
  const target = g.metric === 'peakBytes' ? `${formatBytes(g.target)} (${(g.target / 1e9).toFixed(1)} GB)` : `${g.target}${unit}`;
  const verdict = g.met === null ? 'n/a here' : g.met ? 'met' : 'MISSED';
  return `${g.op} ${target}: ${verdict}`;
}

/** Checks a row against a goal; `applies` false records the goal without judging it. */
export function judge(row: BenchRow, metric: Goal['metric'], op: Goal['op'], target: number, applies: boolean): Goal {
  const value = row[metric];
  const met = !applies || value === undefined ? null : op === '>=' ? value >= target : value <= target;
  return { metric, op, target, met };
}

/** Three significant figures, without exponents for the sizes that occur. */
export function rate(x: number | undefined): string {
  if (x === undefined) return '';
  if (x >= 100) return x.toFixed(0);
  if (x >= 1) return x.toPrecision(3);
  return x === 0 ? '0' : x.toPrecision(2);
}

export function formatTable(rows: BenchRow[]): string {
  const columns: Array<[string, (r: BenchRow) => string]> = [
    ['case', (r) => r.name],
    ['ms', (r) => r.ms.toFixed(3)],
    ['GB/s', (r) => rate(r.gbps)],
    ['TFLOP/s', (r) => rate(r.tflops)],
    ['tokens/s', (r) => rate(r.tokensPerSec)],
    ['MB/s', (r) => rate(r.mbps)],
    ['peak GPU memory', (r) => (r.peakBytes !== undefined ? formatBytes(r.peakBytes) : '')],
    ['dispatches', (r) => (r.dispatches !== undefined ? `${r.dispatches} (${r.submits} submits)` : '')],
    ['CPU ms best / median', (r) => (r.cpuMsMin !== undefined ? `${r.cpuMsMin.toFixed(3)} / ${r.cpuMsMedian!.toFixed(3)}` : '')],
    ['goal', (r) => (r.goals ?? []).map(formatGoal).join('; ')],
    ['timing', (r) => r.timing],
  ];
  // Columns no row fills are left out.
  const used = columns.filter(([, cell], i) => i < 2 || i === columns.length - 1 || rows.some((r) => cell(r) !== ''));
  const head = used.map(([h]) => h);
  const body = rows.map((r) => used.map(([, cell]) => cell(r)));
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |';
  return [line(head), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...body.map(line)].join('\n');
}
