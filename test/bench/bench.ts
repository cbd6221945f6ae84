/**
 * `npm run bench`: benchmarks under Node on Dawn. Bundled into one file (`vite build --mode node`, into
 * .bench/bench.mjs) so it runs on the GPU machine with only Dawn beside it:
 *   bash .gpu/enter.sh node .bench/bench.mjs [--out results.json] [--filter text] [--quick]
 * (test/bench/gpu-run.sh runs it there beside the PyTorch reference). On SwiftShader the kernel, model
 * and training numbers only prove the harness; the import and load figures are CPU-bound and count.
 * `--browser` runs the import and load in headless Chromium instead; `report` turns results into
 * BENCHMARKS.md rows. See USAGE in args.ts.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BenchUsageError, parseBenchArgs, selected, USAGE, type BenchGroup, type CurvesOptions, type ReportOptions, type RunOptions } from './args';
import { formatTable, openBenchGpu, runCase, type BenchCase, type BenchEnv, type BenchRow } from './harness';
import { comparisonSvg, comparisonTable, curvesByModel, INT8_ACCURACY_RUN, int8AccuracyRows, readCurveFiles } from './int8-accuracy.bench';
import { inspectCases } from './inspect.bench';
import { kernelCases } from './kernels.bench';
import { decodeCpuRow, decodeRow, dispatchRows, ModelFixture, prefillRow, trainCpuRow, trainCpuVarlenRows, trainMemoryRow, trainRow } from './model.bench';
import { insertRows, markdownRows, MARKERS, parseResults, type ReferenceResults, type WebgpuResults } from './report';
import { benchShapes, type BenchShapes } from './shapes';
import { nodeWeightsRows, weightsRows } from './weights.bench';

/** A measurement larger than a kernel case: it sets itself up, times itself and returns its rows. */
interface BenchTask {
  group: BenchGroup;
  id: string;
  name: string;
  /** Long measurements that run only when --filter names them. */
  onlyWhenNamed?: boolean;
  run(): Promise<BenchRow[]>;
}

interface Failure {
  name: string;
  message: string;
}

/**
 * The commit measured: --commit, BENCH_COMMIT, the checkout's own (git, here), else what
 * gpu-prepare.sh recorded in .bench/commit for a copy without git (the GPU machine).
 */
function commitOf(o: RunOptions): string | null {
  if (o.commit) return o.commit;
  if (process.env.BENCH_COMMIT) return process.env.BENCH_COMMIT;
  if (existsSync('.git')) {
    try {
      return execFileSync('git', ['describe', '--always', '--dirty', '--abbrev=12'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      // no git program: fall through
    }
  }
  return existsSync('.bench/commit') ? readFileSync('.bench/commit', 'utf8').trim() || null : null;
}

function writeJson(path: string, data: unknown): void {
  mkdirSync(dirname(resolve(path)), { recursive: true });
  writeFileSync(path, JSON.stringify(data, null, 2) + '\n');
  console.log(`results written to ${path}`);
}

function plan(o: RunOptions, env: BenchEnv | null, s: BenchShapes, fixture: () => ModelFixture): { cases: BenchCase[]; tasks: BenchTask[] } {
  const slow = env?.swiftshader ?? false;
  // Budgets bound each case's measuring, so a slow device cannot overrun a time-limited GPU session.
  const counts = {
    model: { iters: slow ? 2 : 10, warmup: slow ? 1 : 2, budgetMs: 40_000 },
    train: { iters: slow ? 1 : 10, warmup: slow ? 1 : 2, budgetMs: 60_000 },
  };
  const T = s.tokens;
  const tasks: BenchTask[] = [
    { group: 'model', id: 'model.dispatches', name: `model.dispatches ${o.scheme} prefill, decode, train`, run: () => dispatchRows(env!, fixture()) },
    { group: 'model', id: 'model.decode.cpu', name: `model.decode.cpu ${o.scheme} b1 ctx${s.decodeContext}`, run: async () => [await decodeCpuRow(env!, fixture())] },
    { group: 'model', id: 'model.prefill', name: `model.prefill ${o.scheme} 1x${T}`, run: async () => [await prefillRow(env!, fixture(), counts.model)] },
    { group: 'model', id: 'model.decode', name: `model.decode ${o.scheme} b1 ctx${s.decodeContext}`, run: async () => [await decodeRow(env!, fixture(), counts.model)] },
    ...s.trainBatches.map((b): BenchTask => ({
      group: 'train',
      id: 'train.memory',
      name: `train.memory ${o.scheme} r${s.lora.r} ${b}x${T}`,
      run: async () => [await trainMemoryRow(env!, fixture(), b)],
    })),
    { group: 'train', id: 'train.step.cpu', name: `train.step.cpu ${o.scheme} r${s.lora.r} 1x${T}`, run: async () => [await trainCpuRow(env!, fixture())] },
    { group: 'train', id: 'train.step.cpu.varlen', name: `train.step.cpu.varlen ${o.scheme} r${s.lora.r} 1x${T / 2}..${T}, longest vs buckets`, run: () => trainCpuVarlenRows(env!, fixture()) },
    ...s.trainBatches.map((b): BenchTask => ({
      group: 'train',
      id: 'train.step',
      name: `train.step ${o.scheme} r${s.lora.r} ${b}x${T}`,
      run: async () => [await trainRow(env!, fixture(), b, counts.train)],
    })),
    {
      group: 'train',
      id: 'train.int8-accuracy',
      name: 'train.int8-accuracy tiny-phi and golden, f32 vs int8 compute, 200 steps',
      onlyWhenNamed: true,
      run: () => int8AccuracyRows(env!, s.mode === 'quick' ? { ...INT8_ACCURACY_RUN, steps: 20 } : INT8_ACCURACY_RUN),
    },
    { group: 'weights', id: 'weights.node', name: `weights.import+load ${o.scheme} (node, fake-indexeddb)`, run: () => nodeWeightsRows(env!, s, o.scheme) },
  ];
  return {
    cases: o.groups.includes('kernels') ? [...kernelCases(s), ...inspectCases(s)].filter((c) => selected(o.filters, c)) : [],
    tasks: tasks.filter((t) => o.groups.includes(t.group) && selected(o.filters, t) && (!t.onlyWhenNamed || o.filters.length > 0)),
  };
}

async function run(o: RunOptions): Promise<number> {
  const s = benchShapes(o.mode);
  if (o.browser) return runBrowser(o, s);
  if (o.list) {
    const { cases, tasks } = plan(o, null, s, () => {
      throw new Error('listing builds no model');
    });
    for (const c of cases) console.log(`kernels  ${c.name}`);
    for (const t of tasks) console.log(`${t.group.padEnd(8)} ${t.name}`);
    return 0;
  }

  const env = await openBenchGpu();
  console.log(`GPU: ${env.describe}${env.swiftshader ? ' (CPU emulation: GPU figures prove the harness only)' : ''}; ${o.mode} shapes, ${o.scheme} weights`);
  let fixture: ModelFixture | null = null;
  const { cases, tasks } = plan(o, env, s, () => (fixture ??= new ModelFixture(env, s, o.scheme)));
  const rows: BenchRow[] = [];
  const failures: Failure[] = [];
  const attempt = async (name: string, group: string, body: () => Promise<BenchRow[]>) => {
    try {
      for (const row of await body()) {
        row.group = group;
        rows.push(row);
        console.log(`  ${row.name}: ${row.ms.toFixed(3)} ms`);
      }
    } catch (err) {
      const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
      failures.push({ name, message });
      console.error(`  ${name}: FAILED\n${message}`);
    }
  };

  const iters = o.iters ?? (env.swiftshader ? 3 : 20);
  const warmup = env.swiftshader ? 1 : 3;
  for (const c of cases) await attempt(c.name, 'kernels', async () => [await runCase(env, c, iters, warmup, 15_000)]);
  // Model and training share the random model; it is freed before the weights cases load their own.
  for (const t of tasks.filter((x) => x.group !== 'weights')) await attempt(t.name, t.group, () => t.run());
  await (fixture as ModelFixture | null)?.release();
  for (const t of tasks.filter((x) => x.group === 'weights')) await attempt(t.name, t.group, () => t.run());

  console.log('\n' + formatTable(rows));
  for (const r of rows.filter((x) => x.breakdown?.length)) {
    console.log(`\n${r.name}: GPU time by kernel (one iteration)`);
    for (const k of r.breakdown!) console.log(`  ${k.kernel.padEnd(32)} ${k.ms.toFixed(3).padStart(10)} ms  x${k.count}`);
  }
  const report = env.ctx.report;
  const results: WebgpuResults & { failures: Failure[] } = {
    tool: 'webgpu',
    version: 1,
    date: new Date().toISOString(),
    gpu: env.describe,
    swiftshader: env.swiftshader,
    mode: o.mode,
    scheme: o.scheme,
    commit: commitOf(o),
    host: { node: process.version, platform: process.platform, arch: process.arch, cpus: cpus().length || null },
    limits: report.limits,
    features: report.features,
    rows,
    failures,
  };
  if (o.out) writeJson(o.out, results);
  env.profiler?.destroy();
  env.gpu.encoder.destroy();
  env.gpu.device.destroy();
  if (failures.length) console.error(`\n${failures.length} case(s) failed: ${failures.map((f) => f.name).join('; ')}`);
  return failures.length ? 1 : 0;
}

/** Loads a package by name at run time: a literal specifier would make Vite bundle it. */
function importByName<T>(specifier: string): Promise<T> {
  return import(/* @vite-ignore */ specifier) as Promise<T>;
}

/** The Chromium import and load: builds test/bench/browser/driver.ts with esbuild and runs it. */
async function runBrowser(o: RunOptions, s: BenchShapes): Promise<number> {
  const root = process.cwd();
  const entry = join(root, 'test/bench/browser/driver.ts');
  if (!existsSync(entry)) throw new Error(`--browser runs from the repository root (no ${entry}); it needs the sources, esbuild and playwright-core`);
  if (o.list) {
    console.log(`weights  weights.import+load ${o.scheme} (chromium, IndexedDB)`);
    return 0;
  }
  const esbuild = await importByName<typeof import('esbuild')>('esbuild');
  const outfile = join(root, '.bench/browser/driver.mjs');
  await esbuild.build({ entryPoints: [entry], bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile, external: ['esbuild', 'playwright-core'], logLevel: 'warning' });
  const driver = await importByName<typeof import('./browser/driver')>(pathToFileURL(outfile).href);
  console.log(`Chromium: import and load of a synthetic checkpoint, ${o.mode} size, ${o.scheme}`);
  const result = await driver.runBrowserWeights({ root, configJson: s.importConfigJson, scheme: o.scheme });
  const rows = weightsRows(result, 'chromium', s, o.scheme).map((r) => ({ ...r, group: 'weights' }));
  console.log('\n' + formatTable(rows));
  const results: WebgpuResults = {
    tool: 'webgpu',
    version: 1,
    date: new Date().toISOString(),
    gpu: `${result.adapter} in ${result.userAgent}`,
    swiftshader: /swiftshader/i.test(result.adapter),
    mode: o.mode,
    scheme: o.scheme,
    commit: commitOf(o),
    host: { node: process.version, platform: process.platform, arch: process.arch, cpus: cpus().length || null },
    limits: {},
    features: [],
    rows,
  };
  if (o.out) writeJson(o.out, results);
  return 0;
}

function report(o: ReportOptions): number {
  const ours = parseResults(readFileSync(o.webgpu, 'utf8'), o.webgpu);
  if (ours.tool !== 'webgpu') throw new Error(`${o.webgpu} holds ${ours.tool} results; --webgpu takes the output of bench.mjs --out`);
  let ref: ReferenceResults | null = null;
  if (o.pytorch) {
    const parsed = parseResults(readFileSync(o.pytorch, 'utf8'), o.pytorch);
    if (parsed.tool !== 'pytorch') throw new Error(`${o.pytorch} holds ${parsed.tool} results; --pytorch takes the output of reference.py`);
    ref = parsed;
  }
  const rows = markdownRows(ours, ref, o.commit);
  if (!o.append) {
    console.log(rows.join('\n'));
    return 0;
  }
  const marker = ours.swiftshader ? MARKERS.machine : MARKERS.gpu;
  writeFileSync(o.append, insertRows(readFileSync(o.append, 'utf8'), marker, rows));
  console.log(`${rows.length} rows added to ${o.append} under "${marker}"`);
  return 0;
}

function curves(o: CurvesOptions): number {
  const { options, curves: all } = readCurveFiles(o.files.map((name) => ({ name, text: readFileSync(name, 'utf8') })));
  const byModel = curvesByModel(all);
  console.log(`${options.steps} steps of ${options.batch} x ${options.seq} tokens`);
  for (const [model, [f32, int8]] of byModel) console.log(`\n${comparisonTable(model, f32, int8, 20)}`);
  if (o.svg) {
    mkdirSync(dirname(resolve(o.svg)), { recursive: true });
    writeFileSync(o.svg, comparisonSvg(byModel));
    console.log(`\nchart written to ${o.svg}`);
  }
  return 0;
}

async function main(): Promise<number> {
  const o = parseBenchArgs(process.argv.slice(2));
  if (o.command === 'help') {
    console.log(USAGE);
    return 0;
  }
  if (o.command === 'report') return report(o);
  return o.command === 'curves' ? curves(o) : run(o);
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof BenchUsageError ? err.message : err);
    process.exit(err instanceof BenchUsageError ? 2 : 1);
  },
);
