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
