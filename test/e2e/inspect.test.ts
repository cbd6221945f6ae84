import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { zipAdapter } from '../../src/engine/adapters/files';
import { startAppWithTinyPhi, stopApp, TINY, type TestAppWithPage } from '../support/app';
import { screenshot, SCREENSHOTS } from '../support/browser';

// The Inspect view of the Adapters page in the built app, in Chromium on SwiftShader, with tiny-phi
// loaded: two adapters (tiny-phi's golden PEFT adapter, and the same after three AdamW steps) are
// compared module by module, intruder dimensions are counted on the GPU, contrastive generation
// streams and stops when cancelled, and every chart exports as PNG and CSV.

let running: TestAppWithPage;
let page: Page;
const work = mkdtempSync(join(tmpdir(), 'e2e-inspect-'));

beforeAll(async () => {
  const config = new Uint8Array(readFileSync(join(TINY, 'golden/adapter/adapter_config.json')));
  const zip = (weights: string) => zipAdapter({ 'adapter_config.json': config, 'adapter_model.safetensors': new Uint8Array(readFileSync(join(TINY, weights))) });
  writeFileSync(join(work, 'tiny-before.zip'), zip('golden/adapter/adapter_model.safetensors'));
  writeFileSync(join(work, 'tiny-after.zip'), zip('golden/lora_after_3_adamw_steps.safetensors'));
  ({ page } = running = await startAppWithTinyPhi());
});

afterAll(async () => {
  await stopApp(running);
  rmSync(work, { recursive: true, force: true });
});

async function download(click: () => Promise<void>): Promise<{ name: string; bytes: Buffer }> {
  const [file] = await Promise.all([page.waitForEvent('download'), click()]);
  return { name: file.suggestedFilename(), bytes: readFileSync(await file.path()) };
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

describe('the Inspect view', () => {
  it('maps where two adapters act and how alike their updates are, with PNG and CSV export', async () => {
    await page.evaluate(() => (location.hash = 'adapters'));
    for (const name of ['tiny-before', 'tiny-after']) {
      await page.getByTestId('adapter-files').setInputFiles(join(work, `${name}.zip`));
      await expect.poll(() => page.locator(`[data-testid="adapter-row"][data-id="${name}"]`).count(), { timeout: 30_000 }).toBe(1);
    }
    await page.getByTestId('open-inspect').click();
    await expect.poll(() => page.evaluate(() => location.hash)).toBe('#adapters/inspect');
    await page.getByTestId('inspect-adapter').selectOption('tiny-before');
    await page.getByTestId('inspect-compare').selectOption('tiny-after');
    await page.getByTestId('compute-spectra').click();
    // Side by side: each adapter's map, then the cosine of their updates.
    const maps = page.getByTestId('update-map');
    await expect.poll(() => maps.evaluateAll((els) => els.map((e) => e.getAttribute('data-cells'))), { timeout: 60_000 }).toEqual(['12', '12', '12']);
    await expect.poll(() => page.getByTestId('compute-spectra').isEnabled()).toBe(true);
    const cell = await page.getByTestId('selected-cell').innerText();
    expect(cell).toMatch(/‖ΔW‖ [\d.e-]+, effective rank [\d.]+; tiny-after: ‖ΔW‖ [\d.e-]+, effective rank [\d.]+; cosine 0\.\d{4}/);

    const spectra = page.getByTestId('inspect-spectra');
    const csv = await download(() => spectra.getByTestId('export-csv').first().click());
    expect(csv.name).toBe('update_tiny-before_tiny-after_map_norm.csv');
    const lines = csv.bytes.toString('utf8').trim().split('\r\n');
    expect(lines[0]).toBe('layer,module,tiny-before norm,tiny-before effective_rank,tiny-before singular_values,tiny-after norm,tiny-after effective_rank,tiny-after singular_values,cosine');
    expect(lines).toHaveLength(13);
    for (const line of lines.slice(1)) {
      const cosine = Number(line.split(',').at(-1));
      expect(cosine).toBeGreaterThan(0.5);
      expect(cosine).toBeLessThanOrEqual(1);
    }
    const png = await download(() => spectra.getByTestId('export-png').first().click());
    expect(png.name).toBe('update_tiny-before_tiny-after_map_norm.png');
    expect(png.bytes.subarray(0, 8)).toEqual(PNG_SIGNATURE);
    // The selected module's singular values: r 4 of them for each adapter.
    const cosineMap = await download(() => spectra.getByTestId('export-png').nth(2).click());
    expect(cosineMap.name).toBe('update_tiny-before_tiny-after_map_cosine.png');
    expect(cosineMap.bytes.subarray(0, 8)).toEqual(PNG_SIGNATURE);
    const values = await download(() => spectra.getByTestId('export-csv').last().click());
    expect(values.name).toMatch(/^update_tiny-before_tiny-after_singular-values_layer\d_[a-z_0-9]+\.csv$/);
    expect(values.bytes.toString('utf8').trim().split('\r\n')).toHaveLength(5);
    expect((await download(() => spectra.getByTestId('export-png').last().click())).bytes.subarray(0, 8)).toEqual(PNG_SIGNATURE);
    await screenshot(page, 'inspect-update-map');
  });

  it('counts intruder dimensions per layer on the GPU, with progress, and exports the chart', async () => {
    const panel = page.getByTestId('inspect-intruders');
    expect(await panel.getByTestId('intruder-explainer').innerText()).toContain('LoRA vs Full Fine-tuning: An Illusion of Equivalence');
    await panel.getByLabel('k (fine-tuned top vectors)').fill('4');
    await panel.getByLabel('Pre-trained vectors compared').fill('16');
    await panel.getByLabel('Iterations').fill('3');
    // One module in every layer first, then all of them.
    await panel.getByLabel('Modules').selectOption('fc2');
    await panel.getByTestId('compute-intruders').click();
    await expect.poll(() => page.getByTestId('intruder-chart').getAttribute('data-modules'), { timeout: 240_000 }).toBe('2');
    await expect.poll(() => panel.getByTestId('compute-intruders').isEnabled()).toBe(true);
    await panel.getByLabel('Modules').selectOption('all');
    await panel.getByTestId('compute-intruders').click();
    await expect.poll(() => page.getByTestId('intruder-chart').getAttribute('data-modules'), { timeout: 240_000 }).toBe('12');
    expect(await panel.getByTestId('intruder-total').innerText()).toMatch(/^\d+ intruders in 12 modules \(top 4, ε 0\.5\)$/);
    const csv = await download(() => panel.getByTestId('export-csv').click());
    const lines = csv.bytes.toString('utf8').trim().split('\r\n');
    expect(lines[0]).toMatch(/^layer,module,intruders,threshold,max_cos_1,max_cos_2,max_cos_3,max_cos_4,sigma_tuned_1/);
    expect(lines).toHaveLength(13);
    expect((await download(() => panel.getByTestId('export-png').click())).bytes.subarray(0, 8)).toEqual(PNG_SIGNATURE);
    await screenshot(page, 'inspect-intruders');
  });

  it('streams contrastive samples, several at once, and stops them when cancelled', async () => {
    const panel = page.getByTestId('inspect-contrast');
    await page.getByTestId('contrast-prompt').fill('Instruct: Name a colour.\nOutput:');
    await panel.getByLabel('Samples').fill('2');
    await panel.getByLabel('Max new tokens').fill('4');
    await page.getByTestId('run-contrast').click();
    const samples = page.getByTestId('contrast-samples');
    await expect.poll(() => samples.getAttribute('data-done'), { timeout: 120_000 }).toBe('true');
    expect(await page.getByTestId('contrast-sample').evaluateAll((els) => els.map((e) => e.getAttribute('data-tokens')))).toEqual(['4', '4']);
    const csv = await download(() => page.getByTestId('contrast-csv').click());
    expect(csv.bytes.toString('utf8').trim().split('\r\n')).toHaveLength(9);

    // A long run, stopped after its first tokens: what was generated stays.
    await panel.getByLabel('Max new tokens').fill('200');
    await page.getByTestId('run-contrast').click();
    await expect.poll(async () => Number(await page.getByTestId('contrast-sample').first().getAttribute('data-tokens')), { timeout: 120_000 }).toBeGreaterThan(0);
    await panel.getByRole('button', { name: 'Cancel' }).click();
    await expect.poll(() => samples.getAttribute('data-done'), { timeout: 120_000 }).toBe('true');
    const shown = Number(await page.getByTestId('contrast-sample').first().getAttribute('data-tokens'));
    expect(shown).toBeGreaterThan(0);
    expect(shown).toBeLessThan(200);
    expect(await samples.innerText()).toContain('cancelled');
    await screenshot(page, 'inspect-contrast');
    await page.getByTestId('inspect-view').screenshot({ path: `${SCREENSHOTS}/inspect-view.png` });
  });
});
