import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

// The engine runs in a Web Worker and under Node: only src/engine/platform/ may know which.
const ENGINE = join(import.meta.dirname, '../../src/engine');
const FORBIDDEN: Array<[RegExp, string]> = [
  [/\bnavigator\b/, 'navigator'],
  [/\bwindow\./, 'window'],
  [/\bdocument\./, 'document'],
  [/from ['"]node:/, 'a node: import'],
  [/\bprocess\.(env|exit|argv|cwd)/, 'process'],
  [/\bBuffer\.(from|alloc)/, 'Buffer'],
  [/from ['"](fs|path|os|http|https|child_process)['"]/, 'a Node built-in'],
  [/from ['"]svelte/, 'svelte'],
  [/import\(['"]webgpu['"]\)|from ['"]webgpu['"]/, "Dawn's webgpu package"],
];

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

describe('engine boundary', () => {
  const files = walk(ENGINE).filter((f) => /\.ts$/.test(f) && !relative(ENGINE, f).startsWith('platform'));
  it('has engine files to check', () => expect(files.length).toBeGreaterThan(3));
  for (const file of files) {
    it(`${relative(ENGINE, file)} uses no host API directly`, () => {
      const code = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
      const found = FORBIDDEN.filter(([re]) => re.test(code)).map(([, what]) => what);
      expect(found, `${relative(ENGINE, file)} touches ${found.join(', ')}`).toEqual([]);
    });
  }
});

// Layers point one way. Each folder of src/engine stands on a floor and imports only from floors below
// it (and src/shared/, the plain values every layer may use); a folder's files import each other freely.
const FLOORS: Record<string, number> = {
  platform: 1, gpu: 1, random: 1, 'untrusted-json': 1,
  engine: 2, store: 2, kernels: 2,
  optim: 3, weights: 3,
  adapters: 4, tokenizer: 4,
  model: 5, data: 5,
  train: 6, eval: 6, inspect: 6,
  export: 7,
  session: 8,
};
const SRC = join(import.meta.dirname, '../../src');
const SHADERS = join(import.meta.dirname, '../../shaders');

/** Every relative import of a file, resolved to a path, and whether it is for types only. */
function importsOf(file: string): Array<{ target: string; typeOnly: boolean }> {
  const code = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\/|^\s*\/\/.*$/gm, '');
  const found: Array<{ target: string; typeOnly: boolean }> = [];
  for (const m of code.matchAll(/(import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?['"](\.{1,2}\/[^'"?]+)/g)) {
    found.push({ target: join(file, '..', m[3]), typeOnly: m[2] !== undefined });
  }
  return found;
}

/** The engine folder (or top-level module) a path of src/engine belongs to. */
function engineUnit(path: string): string {
  return relative(ENGINE, path).split(/[\\/]/)[0].replace(/\.ts$/, '');
}

describe('engine layers', () => {
  const files = walk(ENGINE).filter((f) => /\.ts$/.test(f));
  it('places every engine folder on a floor', () => {
    const units = new Set(files.map(engineUnit));
    expect([...units].filter((u) => !(u in FLOORS) && u !== 'shaders.d')).toEqual([]);
  });
  for (const file of files) {
    const from = engineUnit(file);
    it(`${relative(ENGINE, file)} imports only from lower floors, src/shared and the shaders`, () => {
      const wrong = importsOf(file)
        .filter(({ target }) => {
          if (target.startsWith(SHADERS) || target.startsWith(join(SRC, 'shared'))) return false;
          if (!target.startsWith(ENGINE)) return true; // the UI, the page state, the worker or the CLI
          const to = engineUnit(target);
          return to !== from && !(FLOORS[to] < FLOORS[from]);
        })
        .map(({ target }) => relative(SRC, target));
      expect(wrong, `${relative(ENGINE, file)} reaches up to ${wrong.join(', ')}`).toEqual([]);
    });
  }
});

describe('src/shared', () => {
  for (const file of walk(join(SRC, 'shared'))) {
    it(`${relative(SRC, file)} imports nothing but src/shared`, () => {
      const outside = importsOf(file).filter(({ target }) => !target.startsWith(join(SRC, 'shared')));
      expect(outside.map(({ target }) => relative(SRC, target))).toEqual([]);
    });
  }
});

// The pages and their state reach the engine through the worker: at run time they import src/shared,
// each other and worker/client.ts (the one module that owns the worker); anything else only as types.
// What they compute as the user types (the memory estimate, the plan's checks) lives in src/shared.

describe('the pages and their state', () => {
  const files = [...walk(join(SRC, 'ui')), ...walk(join(SRC, 'state'))].filter((f) => /\.(ts|svelte)$/.test(f));
  /** What a page file imports at run time from outside the pages, their state and src/shared. */
  const runTimeImports = (file: string) =>
    importsOf(file)
      .filter(({ target, typeOnly }) => !typeOnly && !/^(ui|state|shared)[\\/]/.test(relative(SRC, target)))
      .map(({ target }) => relative(SRC, target).replace(/\\/g, '/').replace(/\.ts$/, ''))
      .filter((path) => path !== 'worker/client');
  for (const file of files) {
    it(`${relative(SRC, file)} imports engine and worker code as types only`, () => {
      const wrong = runTimeImports(file);
      expect(wrong, `${relative(SRC, file)} imports ${wrong.join(', ')} at run time`).toEqual([]);
    });
  }
});
