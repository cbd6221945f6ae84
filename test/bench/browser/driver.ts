import { build, type Plugin } from 'esbuild';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import type { QuantScheme } from '../../../src/engine/weights/layout';
import { CHROMIUM_ARGS } from '../../support/browser';
import { serveStatic } from '../../support/static-server';
import type { WeightsRunResult } from '../weights-run';
import type { PageLoadResult, Phi2BenchPage } from './page';

/**
 * The Node side of the browser benchmark (`npm run bench -- --browser`): bundles page.ts for the
 * browser, serves it from localhost (WebGPU needs a secure context), opens it in Debian's headless
 * Chromium with the flags the browser tests use, and runs the import and load there: the load once
 * right after the import, and once more after a reload of the page (a fresh page, device and JS heap,
 * as when the app is opened again and starts Phi-2 from IndexedDB). A persistent profile (not an
 * incognito context) so IndexedDB has a disk-sized quota, as in a normal visit.
 *
 * Built at run time by bench.ts (esbuild, playwright-core left external) rather than bundled into
 * .bench/bench.mjs, so the bundle that travels to the GPU machine stays free of playwright.
 */

/** Node built-ins the shared fixtures import but never call in the page. */
const nodeBuiltinsStub: Plugin = {
  name: 'node-builtins-stub',
  setup(b) {
    b.onResolve({ filter: /^node:/ }, (args) => ({ path: args.path, namespace: 'node-stub' }));
    b.onLoad({ filter: /.*/, namespace: 'node-stub' }, () => ({
      contents:
        'export function readFileSync() { throw new Error("no file system in the page"); }\n' +
        'export function join(...parts) { return parts.join("/"); }\n',
      loader: 'js',
    }));
  },
};

/** `?raw` imports (WGSL sources) as strings, as Vite does. */
const rawText: Plugin = {
  name: 'raw-text',
  setup(b) {
    b.onResolve({ filter: /\?raw$/ }, (args) => ({ path: resolve(args.resolveDir, args.path.slice(0, -4)), namespace: 'raw' }));
    b.onLoad({ filter: /.*/, namespace: 'raw' }, (args) => ({ contents: `export default ${JSON.stringify(readFileSync(args.path, 'utf8'))};`, loader: 'js' }));
  },
};

export interface BrowserWeightsOptions {
  /** The repository root. */
  root: string;
  configJson: Record<string, unknown>;
  scheme: QuantScheme;
  executablePath?: string;
}

export type BrowserWeightsResult = WeightsRunResult & Pick<PageLoadResult, 'adapter' | 'userAgent'>;

export async function runBrowserWeights(o: BrowserWeightsOptions): Promise<BrowserWeightsResult> {
  const out = join(o.root, '.bench/browser/page');
  mkdirSync(out, { recursive: true });
  await build({
    entryPoints: [join(o.root, 'test/bench/browser/page.ts')],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    outfile: join(out, 'page.js'),
    plugins: [nodeBuiltinsStub, rawText],
    logLevel: 'warning',
  });
  writeFileSync(join(out, 'index.html'), '<!doctype html><meta charset="utf-8"><title>phi2 bench</title><script type="module" src="/page.js"></script>\n');
  const server = await serveStatic(resolve(out));
  const profile = mkdtempSync(join(tmpdir(), 'phi2-bench-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: o.executablePath ?? process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (msg) => console.log(`    [chromium ${msg.type()}] ${msg.text()}`));
    page.on('pageerror', (err) => console.log(`    [chromium pageerror] ${err.message}`));
    const bench = async () => {
      await page.waitForFunction(() => 'phi2Bench' in globalThis, undefined, { timeout: 60_000 });
      return page.evaluateHandle(() => (globalThis as unknown as { phi2Bench: Phi2BenchPage }).phi2Bench);
    };
    await page.goto(`${server.url}/index.html`);
    let api = await bench();
    const imported = await api.evaluate((b, { configJson, scheme }) => b.importWeights(configJson, scheme), { configJson: o.configJson, scheme: o.scheme });
    try {
      const { dbName, modelId } = imported;
      const loaded = await api.evaluate((b, a) => b.loadWeights(a.dbName, a.modelId), { dbName, modelId });
      await page.reload();
      api = await bench();
      console.log('    (page reloaded)');
      const reloaded = await api.evaluate((b, a) => b.loadWeights(a.dbName, a.modelId), { dbName, modelId });
      return { ...imported, ...loaded, reloadSeconds: reloaded.loadSeconds };
    } finally {
      await api.evaluate((b, dbName) => b.dropWeights(dbName), imported.dbName).catch(() => undefined);
    }
  } finally {
    await context.close();
    await server.close();
    rmSync(profile, { recursive: true, force: true });
  }
}
