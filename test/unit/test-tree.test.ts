import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import viteConfig from '../../vite.config';

// The test tree mirrors src/: the unit test of src/<path>/x.ts lives in test/unit/<path>/, its GPU test
// in test/gpu/<path>/, so a file's tests are found without searching. Page tests stay in test/e2e/ and
// the benchmark harness's own tests beside it in test/bench/. Every test file must be collected by a
// project that `npm test` runs: a file outside every glob would silently never run.
const ROOT = join(import.meta.dirname, '../..');
const TEST = join(ROOT, 'test');
const SRC = join(ROOT, 'src');

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

/** A vitest include glob ('**' any folders, '*' any name part) as a regular expression. */
function globToRegExp(glob: string): RegExp {
  const source = glob
    .split(/(\*\*\/|\*)/)
    .map((part) => (part === '**/' ? '(?:[^/]+/)*' : part === '*' ? '[^/]*' : part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${source}$`);
}

/** The vitest projects `npm test` runs: its script's `npm run` steps, each `vitest run --project NAME`. */
function projectsRunByNpmTest(): string[] {
  const { scripts } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const steps = [...scripts.test.matchAll(/npm run (\S+)/g)].map((m) => scripts[m[1]] ?? '');
  return steps.flatMap((step) => [...step.matchAll(/vitest run .*?--project (\S+)/g)].map((m) => m[1]));
}

interface Project {
  test?: { name?: string; include?: string[] };
}

describe('the test tree', () => {
  const config = viteConfig({ mode: 'test', command: 'serve' }) as { test: { projects: Project[] } };
  const run = projectsRunByNpmTest();
  const globs = config.test.projects
    .filter((p) => run.includes(p.test?.name ?? ''))
    .flatMap((p) => p.test?.include ?? [])
    .map(globToRegExp);
  const tests = walk(TEST)
    .map((f) => relative(ROOT, f).replace(/\\/g, '/'))
    .filter((f) => f.endsWith('.test.ts'));

  it('is run by `npm test` through the unit, kernels and e2e projects', () => {
    expect(run).toEqual(['unit', 'kernels', 'e2e']);
    expect(tests.length).toBeGreaterThan(100);
  });

  it('has every test file inside a project that `npm test` runs', () => {
    expect(tests.filter((f) => !globs.some((re) => re.test(f)))).toEqual([]);
  });

  it('puts unit and GPU tests at a folder of src/', () => {
    const misplaced = tests.filter((f) => {
      const m = /^test\/(unit|gpu)\/(.*)\/[^/]+$/.exec(f) ?? /^test\/(unit|gpu)\/()[^/]+$/.exec(f);
      return m === null ? !/^test\/(e2e|bench)\//.test(f) : !existsSync(join(SRC, m[2]));
    });
    expect(misplaced).toEqual([]);
  });
});
