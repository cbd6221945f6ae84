import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePhiConfig } from '../../src/engine/weights/config';
import { PHI1_5_CONFIG_JSON, PHI1_CONFIG_JSON, PHI2_CONFIG_JSON } from '../../src/shared/presets';
import { formatBytes } from '../../src/ui/model/format';
import type { EngineApi } from '../../src/worker/api';
import { estimateFor } from '../../src/engine/session/model-estimates';
import { openPage, screenshot } from '../support/browser';
import { HubServer } from '../support/hub-server';
import { type StaticServer } from '../support/static-server';
import { writeTinyPhi1 } from '../support/tiny-phi1';
import { startApp, stopApp } from '../support/app';

// The Model page's presets in the built app: Phi-2, Phi-1.5 and Phi-1 with their sizes and GPU memory
// from their known config.json, and a Phi-1.5 download through the preset (the stand-in Hub serves a
// tiny checkpoint of Phi-1.5's geometry under microsoft/phi-1_5 at main), loaded onto the GPU.
const work = mkdtempSync(join(tmpdir(), 'e2e-presets-'));

let app: StaticServer;
let hub: HubServer;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  writeTinyPhi1(join(work, 'phi-1_5'), { seed: 3, dtype: 'F16' });
  ({ app, hub, browser } = await startApp({ repos: { 'microsoft/phi-1_5': join(work, 'phi-1_5') } }));
  page = await openPage(browser, `${app.url}/#model`);
});

afterAll(async () => {
  await stopApp({ browser, hub, app });
  rmSync(work, { recursive: true, force: true });
});

const estimate = (config: Record<string, unknown>, scheme: 'int8' | 'f16') => estimateFor(parsePhiConfig(config), scheme);

describe('Phi model presets on the Model page', () => {
  it('offers Phi-2, Phi-1.5 and Phi-1 with their own sizes and GPU memory', async () => {
    const card = page.getByTestId('hub-card');
    await expect.poll(() => page.getByTestId('estimate').count(), { timeout: 30_000 }).toBe(1);
    for (const id of ['phi-2', 'phi-1_5', 'phi-1']) expect(await card.getByTestId(`preset-${id}`).count()).toBe(1);
    expect(await page.getByTestId('estimate').innerText()).toContain(`Phi-2 in int8 takes ${formatBytes(estimate(PHI2_CONFIG_JSON, 'int8').storedBytes)}`);

    await card.getByTestId('preset-phi-1_5').click();
    const e15 = estimate(PHI1_5_CONFIG_JSON, 'int8');
    await expect.poll(() => page.getByTestId('estimate').innerText(), { timeout: 30_000 }).toContain(`Phi-1.5 in int8 takes ${formatBytes(e15.storedBytes)}`);
    expect(await card.innerText()).toContain(`About ${formatBytes(e15.downloadBytes)} of F16 safetensors travel`);
    expect(await card.getByRole('button', { name: 'Download Phi-1.5 (int8)' }).count()).toBe(1);
    const memory = await page.getByTestId('memory-estimate').innerText();
    expect(memory).toContain('GPU memory for Phi-1.5 in int8');
    expect(memory).toContain(formatBytes(e15.training.total));
    // 1.3B parameters: well under Phi-2's.
    expect(e15.gpuWeights.total).toBeLessThan(0.55 * estimate(PHI2_CONFIG_JSON, 'int8').gpuWeights.total);

    await card.getByTestId('preset-phi-1').click();
    const e1 = estimate(PHI1_CONFIG_JSON, 'int8');
    await expect.poll(() => page.getByTestId('estimate').innerText(), { timeout: 30_000 }).toContain('Phi-1 in int8');
    expect(await card.innerText()).toContain(`About ${formatBytes(e1.downloadBytes)} of F32 safetensors travel`);
    expect(e1.downloadBytes).toBe(2 * e15.downloadBytes);
    await screenshot(page, 'model-presets');
  });

  it('downloads Phi-1.5 through its preset and loads it onto the GPU', async () => {
    const card = page.getByTestId('hub-card');
    await card.getByTestId('preset-phi-1_5').click();
    if (!(await card.locator('details.advanced').evaluate((d) => (d as HTMLDetailsElement).open))) await card.getByText('Advanced: repository, revision, server').click();
    await card.getByLabel('Base URL').fill(hub.url);
    // Still the preset: only the server changed.
    expect(await card.getByTestId('preset-phi-1_5').locator('input').isChecked()).toBe(true);
    await card.getByRole('button', { name: 'Download Phi-1.5 (int8)' }).click();
    await expect.poll(() => page.getByTestId('import-task').getAttribute('data-status'), { timeout: 120_000 }).toBe('complete');
    const id = 'microsoft/phi-1_5@main:int8';
    const outcome = await page.evaluate((modelId) => (globalThis as unknown as { phi2: EngineApi }).phi2.loadModel(modelId), id);
    expect(outcome.status).toBe('loaded');
    if (outcome.status === 'loaded') expect(outcome.model.dims).toMatchObject({ headDim: 64, rotaryDim: 32, layers: 2, eosTokenId: null });
    await page.evaluate(() => (location.hash = 'train'));
    await expect.poll(() => page.getByTestId('memory-total').count(), { timeout: 30_000 }).toBe(1);
    await screenshot(page, 'train-phi-1_5');
  });
});
