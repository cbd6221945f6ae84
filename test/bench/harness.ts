import { acquireGpu } from '../../src/engine/gpu/device';
import { GpuRuntime } from '../../src/engine/gpu/runtime';
import { TimestampProfiler } from '../../src/engine/gpu/timing';
import { nodePlatform } from '../../src/engine/platform/node';

/**
 * The benchmark harness: one device, a timestamp profiler, and a table. Each case records its
 * dispatches `iters` times after `warmup` runs; the reported time is the median per iteration of the
 * GPU timestamps (or wall-clock after onSubmittedWorkDone where timestamps are missing).
 */
export interface BenchCase {
  name: string;
  /** Work per iteration, for rates: bytes moved and/or floating-point operations, tokens. */
  bytes?: number;
  flops?: number;
  tokens?: number;
  setup(gpu: GpuRuntime): Promise<(gpu: GpuRuntime) => void> | ((gpu: GpuRuntime) => void);
}

export interface BenchRow {
  name: string;
  ms: number;
  gbps?: number;
  tflops?: number;
  tokensPerSec?: number;
  timing: 'gpu-timestamps' | 'wall-clock';
}

export async function openBenchGpu(): Promise<{ gpu: GpuRuntime; profiler: TimestampProfiler | null; describe: string }> {
  const platform = await nodePlatform({ dawnOptions: ['enable-dawn-features=allow_unsafe_apis'] });
  const ctx = await acquireGpu(platform.gpu, platform.gpuMissingReason);
  const profiler = ctx.hasTimestamps ? new TimestampProfiler(ctx.device) : null;
  const gpu = new GpuRuntime(ctx, profiler ?? undefined);
  const a = ctx.report.adapter;
  return { gpu, profiler, describe: [a.vendor, a.architecture, a.device, a.description].filter(Boolean).join(' ') };
}

export async function runCase(
  env: { gpu: GpuRuntime; profiler: TimestampProfiler | null },
  c: BenchCase,
  iters = 20,
  warmup = 3,
): Promise<BenchRow> {
  const { gpu, profiler } = env;
  const record = await c.setup(gpu);
  for (let i = 0; i < warmup; i++) record(gpu);
  await gpu.finish();
  await profiler?.collect();
  const perIter: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    const before = gpu.encoder.dispatches;
    record(gpu);
    const dispatches = gpu.encoder.dispatches - before;
    await gpu.finish();
    const wall = performance.now() - t0;
    if (profiler) {
      const spans = await profiler.collect();
      const ns = spans.slice(-dispatches).reduce((s, [, v]) => s + v, 0);
      perIter.push(ns / 1e6);
    } else perIter.push(wall);
  }
  perIter.sort((a, b) => a - b);
  const ms = perIter[Math.floor(perIter.length / 2)];
  const s = ms / 1e3;
  return {
    name: c.name,
    ms,
    gbps: c.bytes ? c.bytes / s / 1e9 : undefined,
    tflops: c.flops ? c.flops / s / 1e12 : undefined,
    tokensPerSec: c.tokens ? c.tokens / s : undefined,
    timing: profiler ? 'gpu-timestamps' : 'wall-clock',
  };
}

export function formatTable(rows: BenchRow[]): string {
  const head = ['case', 'ms', 'GB/s', 'TFLOP/s', 'tokens/s', 'timing'];
  const body = rows.map((r) => [
    r.name,
    r.ms.toFixed(3),
    r.gbps?.toFixed(1) ?? '',
    r.tflops?.toFixed(2) ?? '',
    r.tokensPerSec?.toFixed(0) ?? '',
    r.timing,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |';
  return [line(head), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...body.map(line)].join('\n');
}
