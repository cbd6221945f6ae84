import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EngineApi } from '../../src/worker/api';
import { layernormBackwardRef, layernormForwardRef } from '../reference/layernorm';
import { launchBrowser, openPage, screenshot } from '../support/browser';
import { compareTensors, randomArray, rng } from '../support/compare';
import { serveStatic, type StaticServer } from '../support/static-server';

// The built app (npm run test:e2e builds it first), served from localhost, in Chromium on SwiftShader.
let server: StaticServer;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  server = await serveStatic(join(import.meta.dirname, '../../dist'));
  browser = await launchBrowser();
  page = await openPage(browser, server.url);
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

describe('the app shell', () => {
  it('shows the worker GPU adapter, its limits and features on the first screen', async () => {
    const panel = page.getByTestId('gpu-panel');
    await expect.poll(() => panel.getAttribute('data-status'), { timeout: 60_000 }).toBe('ready');
    const text = await panel.innerText();
    expect(text).toContain('WebGPU ready');
    expect(text).toMatch(/Largest storage binding\s+\d/);
    expect(text).toMatch(/timestamp-query/);
    await screenshot(page, 'model-gpu');
  });

  it('runs LayerNorm forward and backward inside the worker and matches float64', async () => {
    for (const [rows, cols] of [
      [1, 1],
      [3, 333],
      [16, 2560],
    ] as Array<[number, number]>) {
      const random = rng(rows * 131 + cols);
      const input = {
        rows,
        cols,
        inp: randomArray(rows * cols, random, 2, 0.3),
        weight: randomArray(cols, random, 1, 1),
        bias: randomArray(cols, random, 0.5),
        dout: randomArray(rows * cols, random),
      };
      // Typed arrays cross page.evaluate as plain arrays; rebuild them on each side.
      const plain = Object.fromEntries(Object.entries(input).map(([k, v]) => [k, typeof v === 'number' ? v : Array.from(v)]));
      const got = await page.evaluate(async (args) => {
        const api = (globalThis as unknown as { phi2: EngineApi }).phi2;
        const f = (a: number[]) => new Float32Array(a);
        const a = args as unknown as { rows: number; cols: number; inp: number[]; weight: number[]; bias: number[]; dout: number[] };
        const r = await api.layernormCheck({ rows: a.rows, cols: a.cols, inp: f(a.inp), weight: f(a.weight), bias: f(a.bias), dout: f(a.dout) });
        return { out: Array.from(r.out), mean: Array.from(r.mean), rstd: Array.from(r.rstd), dinp: Array.from(r.dinp) };
      }, plain);
      const ref = layernormForwardRef(input.inp, input.weight, input.bias, rows, cols);
      const refB = layernormBackwardRef(input.dout, input.inp, input.weight, rows, cols);
      const tag = `browser ${rows}x${cols}`;
      expect(compareTensors(`ln.out ${tag}`, got.out, ref.out).relError).toBeLessThan(1e-5);
      expect(compareTensors(`ln.rstd ${tag}`, got.rstd, ref.rstd).relError).toBeLessThan(1e-5);
      const d = compareTensors(`ln.dinp ${tag}`, got.dinp, refB.dinp);
      if (cols === 1) expect(d.maxAbsDiff).toBeLessThan(1e-6);
      else expect(d.relError).toBeLessThan(1e-4);
    }
  });

  it('reports a lost GPU device and recovers without a reload', async () => {
    await page.evaluate(() => (globalThis as unknown as { phi2: EngineApi }).phi2.simulateGpuLoss());
    const panel = page.getByTestId('gpu-panel');
    await expect.poll(() => panel.getAttribute('data-status'), { timeout: 30_000 }).toBe('lost');
    expect(await panel.innerText()).toContain('The GPU device was lost');
    await screenshot(page, 'model-gpu-lost');
    await page.getByRole('button', { name: 'Reconnect to the GPU' }).click();
    await expect.poll(() => panel.getAttribute('data-status'), { timeout: 60_000 }).toBe('ready');
    const after = await page.evaluate(async () => {
      const api = (globalThis as unknown as { phi2: EngineApi }).phi2;
      const r = await api.layernormCheck({ rows: 1, cols: 2, inp: new Float32Array([1, 3]), weight: new Float32Array([1, 1]), bias: new Float32Array([0, 0]), dout: new Float32Array([0, 0]) });
      return Array.from(r.out);
    });
    expect(after[0]).toBeCloseTo(-1, 3);
    expect(after[1]).toBeCloseTo(1, 3);
  });
});
