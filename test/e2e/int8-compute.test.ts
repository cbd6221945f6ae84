import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EngineApi } from '../../src/worker/api';
import { TINY_MODEL_ID, startAppWithTinyPhi, stopApp, type TestAppWithPage } from '../support/app';

// The int8 settings in the built app (Chromium on SwiftShader, whose WGSL has the packed 4 x 8-bit dot
// product), with tiny-phi (int8) from a stand-in Hub: the Model page's inference settings reach the
// loaded model and the Demo generates with them; the Train page's int8 compute reaches the run.

let running: TestAppWithPage;
let page: Page;
beforeAll(async () => ({ page } = running = await startAppWithTinyPhi()));
afterAll(() => stopApp(running));

const show = (section: string) => page.evaluate((s) => (location.hash = s), section);
const workerSettings = () => page.evaluate(() => (globalThis as unknown as { phi2: EngineApi }).phi2.inferenceSettings());

describe('int8 settings', () => {
  it('int8 compute and the int8 lm_head: off by default, switched on the Model page, the Demo generates with them', async () => {
    // The model was loaded through the API: the Model page, opened again, finds it.
    await show('#demo');
    await show('#model');
    const compute = page.getByTestId('inference-compute');
    const head = page.getByTestId('inference-lmHead');
    const state = (key: string) => () => page.getByTestId(`inference-${key}-state`).innerText();
    await expect.poll(state('compute'), { timeout: 60_000 }).toBe('(off in the loaded model)');
    expect(await compute.isChecked()).toBe(false);
    expect(await head.isChecked()).toBe(false);
    expect(await page.getByTestId('inference-settings').innerText()).toMatch(/SwitchBack/);
    expect(await page.getByTestId('inference-compute-unavailable').count()).toBe(0);

    await compute.check();
    // Applying one waits for the GPU (the int8 head is quantised there): seconds on SwiftShader.
    await expect.poll(state('compute'), { timeout: 60_000 }).toBe('(on in the loaded model)');
    await head.check();
    await expect.poll(state('lmHead'), { timeout: 60_000 }).toBe('(on in the loaded model)');
    expect((await workerSettings()).applied).toEqual({ compute: 'int8', lmHead: 'int8', kvCache: 'f32' });

    await show('#demo');
    await expect.poll(() => page.getByTestId('demo-prompt').inputValue(), { timeout: 60_000 }).toMatch(/^Question: /);
    await page.getByTestId('demo-settings').getByLabel('Max new tokens').fill('3');
    await page.getByTestId('demo-run').click();
    const output = page.getByTestId('demo-output').first();
    await expect.poll(() => output.getAttribute('data-status'), { timeout: 180_000 }).toMatch(/^(done|cancelled|failed)$/);
    expect(await output.getAttribute('data-status')).toBe('done');
    expect(await output.innerText()).toMatch(/\d new tokens after \d+ prompt tokens/);
    expect(await page.getByTestId('demo-precision').innerText()).toBe('int8 compute, int8 lm_head');

    // Back to the exact model: the setting is the user's, kept across a reload, and off again on request.
    await page.reload();
    await expect.poll(async () => (await workerSettings()).chosen, { timeout: 60_000 }).toEqual({ compute: 'int8', lmHead: 'int8', kvCache: 'f32' });
    await show('#model');
    await page.getByTestId('inference-compute').uncheck();
    await page.getByTestId('inference-lmHead').uncheck();
    await expect.poll(async () => (await workerSettings()).chosen, { timeout: 60_000 }).toEqual({ compute: 'f32', lmHead: 'f16', kvCache: 'f32' });
  });

  it('int8 compute on the Train page reaches the run: its panel says int8', async () => {
    const status = await page.evaluate((id) => (globalThis as unknown as { phi2: EngineApi }).phi2.loadModel(id).then((o) => o.status), TINY_MODEL_ID);
    expect(status).toBe('loaded');
    await show('#train');
    await expect.poll(() => page.getByTestId('memory-total').count(), { timeout: 60_000 }).toBe(1);
    const memory = () => page.getByTestId('train-memory').innerText();
    expect(await memory()).not.toMatch(/int8 compute/);
    await page.getByTestId('train-int8-compute').check();
    await expect.poll(memory, { timeout: 30_000 }).toMatch(/int8 compute: one activation quantised per row/);
    await page.getByTestId('adapter-name').fill('e2e-int8');
    await page.getByTestId('length-unit').selectOption('steps');
    await page.getByTestId('train-steps').fill('1');
    await page.getByTestId('grad-accumulation').fill('1');
    await page.getByLabel('Maximum length (tokens)').fill('16');
    expect(await page.getByTestId('plan-problems').count()).toBe(0);
    await page.getByTestId('start-training').click();
    const run = page.getByTestId('train-run');
    await expect.poll(() => page.getByTestId('train-compute').innerText().catch(() => ''), { timeout: 240_000 }).toBe('int8');
    await expect.poll(() => run.getAttribute('data-outcome'), { timeout: 280_000 }).toBe('finished');
  });
});
