import { formatBytes, formatGoal, rate as round, type BenchRow } from './harness';
import type { BenchMode } from './shapes';

/**
 * The results files and their rows in BENCHMARKS.md. The WebGPU run (bench.mjs --out) and the PyTorch
 * reference (test/bench/pytorch/reference.py) each write JSON; a row of the table pairs one of our
 * cases with PyTorch's figures for the same case id and shape, measured on the same GPU.
 */

export interface WebgpuResults {
  tool: 'webgpu';
  version: 1;
  /** ISO date and time of the run. */
  date: string;
  /** The adapter, as Dawn describes it. */
  gpu: string;
  swiftshader: boolean;
  mode: BenchMode;
  scheme: string;
  commit: string | null;
  host: { node: string; platform: string; arch: string; cpus: number | null };
  limits: Record<string, number>;
  features: string[];
  rows: BenchRow[];
}

export interface ReferenceRow {
  id: string;
  shape: string;
  name: string;
  /** 'bf16', 'fp32', 'bf16+checkpointing', ... */
  variant: string;
  ms?: number;
  tokensPerSec?: number;
  peakBytes?: number;
}

export interface ReferenceResults {
  tool: 'pytorch';
  date: string;
  gpu: string;
  versions: Record<string, string>;
  settings: Record<string, unknown>;
  rows: ReferenceRow[];
}

function fail(file: string, message: string): never {
  throw new Error(`${file}: ${message}`);
}

/** Parses and checks a results file of either tool. */
export function parseResults(text: string, file: string): WebgpuResults | ReferenceResults {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    fail(file, `not JSON (${(err as Error).message}); did the run print something else to stdout?`);
  }
  if (typeof data !== 'object' || data === null) fail(file, 'expected a JSON object');
  const o = data as Record<string, unknown>;
  if (o.tool !== 'webgpu' && o.tool !== 'pytorch') fail(file, `"tool" is ${JSON.stringify(o.tool)}, expected "webgpu" or "pytorch"`);
  if (typeof o.date !== 'string' || typeof o.gpu !== 'string') fail(file, 'needs "date" and "gpu" strings');
  if (!Array.isArray(o.rows)) fail(file, 'needs a "rows" array');
  o.rows.forEach((r: unknown, i: number) => {
    const row = r as Record<string, unknown>;
    if (typeof row !== 'object' || row === null || typeof row.name !== 'string') fail(file, `row ${i} has no name`);
    if (o.tool === 'pytorch' && (typeof row.id !== 'string' || typeof row.shape !== 'string' || typeof row.variant !== 'string')) {
      fail(file, `row ${i} (${row.name}) needs "id", "shape" and "variant"`);
    }
    if (o.tool === 'webgpu' && typeof row.ms !== 'number') fail(file, `row ${i} (${row.name}) has no "ms"`);
  });
  return data as WebgpuResults | ReferenceResults;
}

/** Rows measured without running anything on the GPU: allocated memory, dispatch counts, CPU time of a step. */
const CPU_ONLY_IDS = ['train.memory', 'model.dispatches', 'model.decode.cpu', 'train.step.cpu'];

/** The figures of one of our rows, most telling first. */
export function oursCell(r: BenchRow): string {
  const parts: string[] = [];
  if (r.tokensPerSec !== undefined) parts.push(`${round(r.tokensPerSec)} tok/s`);
  if (r.tflops !== undefined) parts.push(`${round(r.tflops)} TFLOP/s`);
  if (r.gbps !== undefined) parts.push(`${round(r.gbps)} GB/s`);
  if (r.mbps !== undefined) parts.push(`${round(r.mbps)} MB/s`);
  if (r.dispatches !== undefined) parts.push(`${r.dispatches} dispatches, ${r.submits} submits`);
  if (r.cpuMsMin !== undefined) parts.push(`CPU ${r.cpuMsMin.toFixed(3)} ms best, ${r.cpuMsMedian!.toFixed(3)} ms median`);
  if (r.peakBytes !== undefined) parts.push(`peak ${formatBytes(r.peakBytes)}${r.estimateBytes !== undefined ? ` (estimate ${formatBytes(r.estimateBytes)})` : ''}`);
  // An allocation-only row's time is only how long recording took, not a figure to compare.
  if (!CPU_ONLY_IDS.includes(r.id ?? '')) parts.push(`${r.ms >= 1000 ? (r.ms / 1e3).toFixed(2) + ' s' : r.ms.toFixed(3) + ' ms'}`);
  return parts.join(', ');
}

/** PyTorch's figures for a row; `memoryOnly` for our allocation-only memory rows. */
export function referenceCell(refs: readonly ReferenceRow[], memoryOnly = false): string {
  return refs
    .filter((r) => !memoryOnly || r.peakBytes !== undefined)
    .map((r) => {
      const parts: string[] = [];
      if (r.tokensPerSec !== undefined && !memoryOnly) parts.push(`${round(r.tokensPerSec)} tok/s`);
      if (r.peakBytes !== undefined) parts.push(`peak ${formatBytes(r.peakBytes)}`);
      if (!parts.length && r.ms !== undefined) parts.push(`${r.ms.toFixed(3)} ms`);
      return `${r.variant} ${parts.join(', ')}`;
    })
    .join('; ');
}

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** Rows whose figures do not depend on the GPU: CPU-bound import and load, and the CPU-only rows above. */
export function deviceIndependent(r: BenchRow): boolean {
  return (r.id?.startsWith('weights.') ?? false) || CPU_ONLY_IDS.includes(r.id ?? '');
}

/**
 * Table rows `| date | GPU | commit | case | ours | PyTorch | goal / note |`. On SwiftShader only the
 * rows that do not depend on the GPU mean anything, and only those are returned.
 */
export function markdownRows(ours: WebgpuResults, ref: ReferenceResults | null, commit: string | null): string[] {
  const date = ours.date.slice(0, 10);
  const gpu = ours.swiftshader ? 'this machine (CPU; SwiftShader)' : ref?.gpu || ours.gpu;
  // A short hash, keeping a suffix such as "-dirty".
  const sha = (commit ?? ours.commit ?? 'unknown').replace(/^([0-9a-f]{12})[0-9a-f]+/, '$1');
  const rows = ours.swiftshader ? ours.rows.filter(deviceIndependent) : ours.rows;
  return rows.map((r) => {
    // Our allocation-only memory rows compare with the peak of PyTorch's training steps.
    const memoryOnly = r.id === 'train.memory';
    const id = memoryOnly ? 'train.step' : r.id;
    const refs = ref?.rows.filter((x) => x.id === id && x.shape === r.shape) ?? [];
    const refText = referenceCell(refs, memoryOnly);
    const note = [...(r.goals ?? []).map(formatGoal), ...(ours.mode === 'quick' ? ['quick shapes'] : [])].join('; ');
    return `| ${[date, gpu, sha, r.name, oursCell(r), refText || '—', note].map(cell).join(' | ')} |`;
  });
}

/** The marker line above each results table in BENCHMARKS.md. */
export const MARKERS = { gpu: '<!-- results: gpu -->', machine: '<!-- results: this machine -->' } as const;

/**
 * Adds rows at the top of the table that follows `marker` (newest first), dropping the placeholder row
 * that says no run exists yet. Throws when the marker or its table is missing.
 */
export function insertRows(markdown: string, marker: string, rows: readonly string[]): string {
  const lines = markdown.split('\n');
  const at = lines.findIndex((l) => l.trim() === marker);
  if (at < 0) throw new Error(`the marker "${marker}" is not in the file; add it above the results table`);
  let sep = -1;
  for (let i = at + 1; i < lines.length; i++) {
    if (/^\|(\s*:?-+:?\s*\|)+\s*$/.test(lines[i])) {
      sep = i;
      break;
    }
    if (lines[i].startsWith('#')) break;
  }
  if (sep < 0) throw new Error(`no table header follows "${marker}"`);
  let end = sep + 1;
  while (end < lines.length && lines[end].startsWith('|')) end++;
  const kept = lines.slice(sep + 1, end).filter((l) => !l.includes('no run yet'));
  return [...lines.slice(0, sep + 1), ...rows, ...kept, ...lines.slice(end)].join('\n');
}
