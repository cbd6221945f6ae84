import type { QuantScheme } from '../../src/engine/weights/layout';
import type { BenchMode } from './shapes';

/** The command line of .bench/bench.mjs (`npm run bench -- ...`). */

export const BENCH_GROUPS = ['kernels', 'model', 'train', 'weights'] as const;
export type BenchGroup = (typeof BENCH_GROUPS)[number];

export interface RunOptions {
  command: 'run';
  mode: BenchMode;
  /** Run only cases whose name or id contains one of these. */
  filters: string[];
  groups: BenchGroup[];
  out: string | null;
  scheme: QuantScheme;
  /** Iterations of each kernel case (default: 20 on a GPU, 3 on SwiftShader). */
  iters: number | null;
  /** Import and load in headless Chromium instead of the Node groups. */
  browser: boolean;
  list: boolean;
  commit: string | null;
}

export interface ReportOptions {
  command: 'report';
  webgpu: string;
  pytorch: string | null;
  commit: string | null;
  /** A markdown file (BENCHMARKS.md) to add the rows to; otherwise they are printed. */
  append: string | null;
}

export interface CurvesOptions {
  command: 'curves';
  /** The curve files the train.int8-accuracy runs wrote (.bench/int8-accuracy*.json). */
  files: string[];
  /** Where to write the SVG chart; without it only the tables are printed. */
  svg: string | null;
}

export const USAGE = `Usage:
  node .bench/bench.mjs [options]          run the benchmarks (npm run bench -- [options])
    --quick              small shapes that SwiftShader finishes in minutes (default: Phi-2's real shapes)
    --group a,b          only these groups: ${BENCH_GROUPS.join(', ')} (default: all)
    --filter a,b         only cases whose name or id contains one of these texts
    --scheme int8|f16    weights of the model, training and import cases (default int8)
    --iters n            iterations per kernel case (default 20 on a GPU, 3 on SwiftShader)
    --browser            import and load in headless Chromium (real IndexedDB) instead of the Node groups
    --out file.json      write the results as JSON
    --commit sha         the commit measured, recorded in the JSON
    --list               print the cases that would run, and exit
    --help               print this
  node .bench/bench.mjs report --webgpu webgpu.json [--pytorch pytorch.json] [--commit sha] [--append BENCHMARKS.md]
                         turn results into BENCHMARKS.md rows (ours beside PyTorch on the same GPU)
  node .bench/bench.mjs curves [--svg chart.svg] .bench/int8-accuracy-*.json
                         the train.int8-accuracy curves (one file a run) as BENCHMARKS.md tables and a chart`;

export class BenchUsageError extends Error {
  constructor(message: string) {
    super(`${message}\n\n${USAGE}`);
    this.name = 'BenchUsageError';
  }
}

/** Splits "--name=value" and "--name value"; the flags take no value, the options one each. */
function tokens(argv: readonly string[], flags: readonly string[], options: readonly string[]): Map<string, string | true> {
  const out = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new BenchUsageError(`unexpected argument "${arg}"`);
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
    if (!flags.includes(name) && !options.includes(name)) throw new BenchUsageError(`unknown option --${name}`);
    if (out.has(name)) throw new BenchUsageError(`--${name} is given twice`);
    if (flags.includes(name)) {
      if (eq > 0) throw new BenchUsageError(`--${name} takes no value`);
      out.set(name, true);
      continue;
    }
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined || value === '' || (eq < 0 && value.startsWith('--'))) throw new BenchUsageError(`--${name} needs a value`);
    out.set(name, value);
  }
  return out;
}

function list(value: string): string[] {
  return value.split(',').map((v) => v.trim()).filter(Boolean);
}

export function parseBenchArgs(argv: readonly string[]): RunOptions | ReportOptions | CurvesOptions | { command: 'help' } {
  if (argv.includes('--help') || argv.includes('-h')) return { command: 'help' };
  if (argv[0] === 'curves') {
    const rest = argv.slice(1);
    const files = rest.filter((a, i) => !a.startsWith('--') && !(i > 0 && rest[i - 1] === '--svg'));
    const t = tokens(rest.filter((a) => !files.includes(a)), [], ['svg']);
    if (!files.length) throw new BenchUsageError('curves needs the curve files (.bench/int8-accuracy-*.json)');
    return { command: 'curves', files, svg: (t.get('svg') as string | undefined) ?? null };
  }
  if (argv[0] === 'report') {
    const t = tokens(argv.slice(1), [], ['webgpu', 'pytorch', 'commit', 'append']);
    const webgpu = t.get('webgpu');
    if (typeof webgpu !== 'string') throw new BenchUsageError('report needs --webgpu <results.json>');
    const str = (name: string) => (t.get(name) as string | undefined) ?? null;
    return { command: 'report', webgpu, pytorch: str('pytorch'), commit: str('commit'), append: str('append') };
  }
  const t = tokens(argv, ['quick', 'browser', 'list'], ['group', 'filter', 'scheme', 'iters', 'out', 'commit']);
  const groups = t.has('group') ? list(t.get('group') as string) : [...BENCH_GROUPS];
  for (const g of groups) {
    if (!(BENCH_GROUPS as readonly string[]).includes(g)) throw new BenchUsageError(`unknown group "${g}"; the groups are ${BENCH_GROUPS.join(', ')}`);
  }
  if (!groups.length) throw new BenchUsageError('--group names no group');
  const scheme = (t.get('scheme') as string | undefined) ?? 'int8';
  if (scheme !== 'int8' && scheme !== 'f16') throw new BenchUsageError(`--scheme must be int8 or f16, got "${scheme}"`);
  let iters: number | null = null;
  if (t.has('iters')) {
    iters = Number(t.get('iters'));
    if (!Number.isInteger(iters) || iters < 1) throw new BenchUsageError(`--iters must be a positive integer, got "${t.get('iters')}"`);
  }
  if (t.has('browser') && t.has('group')) throw new BenchUsageError('--browser runs only the browser import and load; leave out --group');
  return {
    command: 'run',
    mode: t.has('quick') ? 'quick' : 'full',
    filters: t.has('filter') ? list(t.get('filter') as string) : [],
    groups: groups as BenchGroup[],
    out: (t.get('out') as string | undefined) ?? null,
    scheme,
    iters,
    browser: t.has('browser'),
    list: t.has('list'),
    commit: (t.get('commit') as string | undefined) ?? null,
  };
}

/** Whether a case is selected by the filters (all are when there are none). */
export function selected(filters: readonly string[], c: { name: string; id?: string }): boolean {
  return !filters.length || filters.some((f) => c.name.includes(f) || (c.id?.includes(f) ?? false));
}
