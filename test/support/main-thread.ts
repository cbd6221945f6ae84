import { createReadStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Browser } from 'playwright-core';

/**
 * How much work the page's main thread does in one task, measured in the thread's CPU time rather
 * than in wall-clock time. A PerformanceObserver 'longtask' is wall time: on a loaded machine the
 * renderer is descheduled in the middle of a 40 ms task and it is reported as 400 ms. Chromium's trace
 * gives every task on the renderer's main thread both its wall duration (`dur`) and the time the
 * thread actually ran (`tdur`, from the thread's CPU clock); only the latter is the app's own work,
 * and it does not grow when other processes compete for the CPU.
 */

export interface MainThreadTask {
  /** Trace timestamp, ms. */
  start: number;
  /** Wall-clock duration, ms. */
  wallMs: number;
  /** Time the main thread ran, ms. */
  cpuMs: number;
}

/** The devtools timeline's tasks (one RunTask per task of each thread) and the thread names. */
const CATEGORIES = ['disabled-by-default-devtools.timeline', '__metadata'];

export class MainThreadRecorder {
  private dir: string | null = null;

  constructor(private readonly browser: Browser) {}

  async start(): Promise<void> {
    this.dir = mkdtempSync(join(tmpdir(), 'main-thread-'));
    await this.browser.startTracing(undefined, { path: join(this.dir, 'trace.json'), categories: CATEGORIES });
  }

  /** Stops the trace and returns every task of every renderer main thread, longest CPU time first. */
  async stop(): Promise<MainThreadTask[]> {
    if (!this.dir) throw new Error('MainThreadRecorder.stop() before start()');
    await this.browser.stopTracing();
    try {
      return await rendererMainTasks(join(this.dir, 'trace.json'));
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
      this.dir = null;
    }
  }
}

/**
 * Reads a trace line by line (Chromium writes one event per line; a trace of minutes is tens of MB)
 * and keeps the RunTask events of the threads named CrRendererMain.
 */
export async function rendererMainTasks(path: string): Promise<MainThreadTask[]> {
  const mainThreads = new Set<string>();
  const candidates: Array<{ key: string; ts: number; dur: number; tdur: number | undefined }> = [];
  const lines = createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Infinity });
  for await (const raw of lines) {
    const line = raw.trim().replace(/,$/, '');
    if (!line.startsWith('{"') || line.startsWith('{"traceEvents"')) continue;
    let e: { name?: string; ph?: string; pid?: number; tid?: number; ts?: number; dur?: number; tdur?: number; args?: { name?: string } };
    try {
      e = JSON.parse(line);
    } catch {
      continue; // the closing lines of the file
    }
    const key = `${e.pid}:${e.tid}`;
    if (e.ph === 'M' && e.name === 'thread_name' && e.args?.name === 'CrRendererMain') mainThreads.add(key);
    else if (e.ph === 'X' && e.name === 'RunTask') candidates.push({ key, ts: e.ts ?? 0, dur: e.dur ?? 0, tdur: e.tdur });
  }
  const tasks = candidates.filter((c) => mainThreads.has(c.key));
  if (!tasks.length) throw new Error(`the trace ${path} has no tasks of a renderer main thread`);
  if (tasks.every((t) => t.tdur === undefined)) throw new Error('the trace has no thread times (tdur): this platform cannot measure CPU time per task');
  return tasks.map((t) => ({ start: t.ts / 1000, wallMs: t.dur / 1000, cpuMs: (t.tdur ?? 0) / 1000 })).sort((a, b) => b.cpuMs - a.cpuMs);
}
