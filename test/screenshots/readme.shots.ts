import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Locator, Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { zipAdapter } from '../../src/engine/adapters/files';
import { HubServer, TEST_REVISION } from '../support/hub-server';
import { type StaticServer } from '../support/static-server';
import { TINY, TINY_ADAPTER, TINY_MODEL_ID, TINY_REPO, startApp, stopApp } from '../support/app';

// The README's screenshots, made the way a user gets there: `npm run screenshots` builds the app and writes
// test/screenshots/{model,data,train,evaluate,demo,adapters,inspect}.png. tiny-phi (Phi-2's architecture,
// vocabulary and tokenizer at hidden size 64, random weights) stands in for Phi-2, served by a stand-in Hub
// with the paper's adapter preset; its answers are gibberish, the pages are what they are. Each picture is one
// part of a page at 1280 px wide, stored as a 64-colour PNG so that they stay small. Look at each one before
// committing it. Not part of `npm test`: it takes minutes and its pictures hold timings.
const OUT = import.meta.dirname;
const FLAN_REPO = 'ChunB1/phi-2_OpenOrca_cot_only';
const WIDTH = 1280;

let app: StaticServer;
let hub: HubServer;
let browser: Browser;
let page: Page;
const work = mkdtempSync(join(tmpdir(), 'readme-shots-'));

beforeAll(async () => {
  ({ app, hub, browser } = await startApp({ repos: { [TINY_REPO]: TINY, [FLAN_REPO]: TINY_ADAPTER } }));
  const context = await browser.newContext({ viewport: { width: WIDTH, height: 1000 }, colorScheme: 'light' });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: app.url });
  page = await context.newPage();
  page.on('pageerror', (err) => console.log(`[browser pageerror] ${err.message}`));
  await page.goto(`${app.url}/#model`);
  // The Model page's Hub settings point at the stand-in, as "Advanced" would: the presets come from it too.
  await page.evaluate((s) => localStorage.setItem('phi2.model.hubSettings', JSON.stringify(s)), { repo: TINY_REPO, revision: TEST_REVISION, baseUrl: hub.url });
  await page.reload();
}, 120_000);

afterAll(async () => {
  await stopApp({ browser, hub, app });
  rmSync(work, { recursive: true, force: true });
});

async function show(section: string): Promise<void> {
  await page.evaluate((s) => (location.hash = s), section);
}

/** One part of a page, from the top of `from` to the bottom of `to`, at the page's width, as a 64-colour PNG. */
async function shoot(name: string, from: Locator, to: Locator = from): Promise<void> {
  await page.evaluate(() => document.fonts.ready);
  // Charts animate in; the picture is of where they end.
  await page.waitForTimeout(1000);
  const a = (await from.boundingBox())!;
  const b = (await to.boundingBox())!;
  const scroll = await page.evaluate(() => window.scrollY);
  const top = Math.max(0, a.y + scroll - 12);
  const bottom = b.y + scroll + b.height + 12;
  const shot = await page.screenshot({ fullPage: true, clip: { x: 0, y: top, width: WIDTH, height: bottom - top } });
  const path = join(OUT, `${name}.png`);
  writeFileSync(path, await sharp(shot).png({ palette: true, colors: 64, effort: 10, compressionLevel: 9 }).toBuffer());
  console.log(`${name}.png: ${WIDTH} × ${Math.round(bottom - top)} px, ${Math.round(statSync(path).size / 1024)} KiB`);
}

it('the Model page: a model downloaded, stored and on the GPU', async () => {
  await page.getByRole('button', { name: `Download ${TINY_REPO} (int8)` }).click();
  await expect.poll(() => page.getByTestId('import-task').getAttribute('data-status'), { timeout: 120_000 }).toBe('complete');
  const row = page.locator(`[data-testid="model-row"][data-model-id="${TINY_MODEL_ID}"]`);
  await row.getByRole('button', { name: 'Load onto GPU' }).click();
  await expect.poll(() => row.getAttribute('data-loaded'), { timeout: 120_000 }).toBe('true');
  await page.getByTestId('import-task').getByRole('button', { name: 'Dismiss' }).click();
  // The stand-in Hub's settings stay folded away, as a user who downloads Phi-2 sees them.
  const advanced = page.locator('details.advanced');
  if (await advanced.evaluate((d) => (d as HTMLDetailsElement).open)) await advanced.locator('summary').click();
  await shoot('model', page.getByTestId('get-weights'), page.getByTestId('gpu-panel'));
}, 300_000);

it('the Data page: a labelled file turned into symbol-tuning prompts from itself', async () => {
  await show('data');
  const texts = ['a gripping, tender film', 'flat and far too long', 'the cast is superb', 'I checked my watch twice', 'a joy from start to end'];
  const rows = ['text,label', ...Array.from({ length: 40 }, (_, i) => `"${texts[i % 5]} (${i})",${i % 5 === 1 || i % 5 === 3 ? 'negative' : 'positive'}`)];
  await page.locator('#data-file').setInputFiles({ name: 'reviews.csv', mimeType: 'text/csv', buffer: Buffer.from(rows.join('\n')) });
  await expect.poll(() => page.getByTestId('mode-symbol').isChecked(), { timeout: 30_000 }).toBe(true);
  await page.getByTestId('symbol-count').fill('20');
  await page.getByRole('button', { name: 'Generate symbol-tuning prompts' }).click();
  await expect.poll(() => page.getByTestId('prepared-count').count(), { timeout: 60_000 }).toBe(1);
  await page.getByTestId('save-name').fill('reviews, symbol prompts');
  await page.getByRole('button', { name: 'Save dataset' }).click();
  await expect.poll(() => page.locator('[data-testid="saved-row"][data-name="reviews, symbol prompts"]').count(), { timeout: 30_000 }).toBe(1);
  await shoot('data', page.getByTestId('mapping-panel'), page.getByTestId('prepared-example').first());
}, 300_000);

it('the Train page: a run in progress with its loss chart', async () => {
  await show('train');
  await expect.poll(() => page.getByTestId('memory-total').count(), { timeout: 60_000 }).toBe(1);
  await page.getByTestId('adapter-name').fill('phi-2-instruction');
  await page.getByTestId('length-unit').selectOption('steps');
  await page.getByTestId('train-steps').fill('400');
  await page.getByLabel('Maximum length (tokens)').fill('32');
  await page.getByTestId('checkpoint-every').fill('100');
  await page.getByTestId('start-training').click();
  await expect.poll(async () => Number(await page.getByTestId('loss-chart').getAttribute('data-points')), { timeout: 800_000, interval: 500 }).toBeGreaterThanOrEqual(30);
  await shoot('train', page.getByTestId('train-run'), page.getByTestId('train-memory'));
  await page.getByTestId('cancel-training').click();
  await expect.poll(() => page.getByTestId('train-run').getAttribute('data-outcome'), { timeout: 120_000 }).toBe('cancelled');
}, 900_000);

it("the Evaluate page: the base model and the paper's adapter beside the paper's numbers", async () => {
  await show('evaluate');
  await page.getByRole('button', { name: 'Load FLAN-Phi-2', exact: true }).click();
  await expect.poll(() => page.getByTestId('adapter-preset').first().innerText(), { timeout: 120_000 }).toMatch(/On the GPU as adapter/);
  const run = page.getByTestId('eval-run');
  await run.getByLabel(/Choose suites/).check();
  for (const f of ['Instruction + symbol', 'No instruction + symbol']) await run.getByLabel(f, { exact: true }).uncheck();
  for (const f of ['Instruction + label', 'Flipped labels (flipped-label suite)']) await run.getByLabel(f, { exact: true }).check();
  await run.getByLabel('Items per dataset and format').fill('2');
  const settings = run.locator('details.settings');
  if (!(await settings.evaluate((d) => (d as HTMLDetailsElement).open))) await run.getByText(/^Generation and scoring/).click();
  await run.getByLabel('Max new tokens (the paper: 50)').fill('4');
  await expect.poll(() => page.getByTestId('eval-plan-line').innerText().catch(() => ''), { timeout: 120_000 }).toMatch(/× 2 models$/);
  await page.getByTestId('eval-start').click();
  await expect.poll(() => page.getByTestId('eval-outcome').innerText().catch(() => ''), { timeout: 600_000 }).toMatch(/Done: 2 runs saved/);
  await expect.poll(() => page.locator('[data-testid="eval-compare"] canvas').count()).toBeGreaterThan(0);
  await shoot('evaluate', page.getByTestId('eval-compare'), page.getByTestId('compare-flipped/flipped'));
}, 900_000);

it('the Demo page: one prompt, the base model and the adapter side by side', async () => {
  await show('demo');
  await expect.poll(() => page.getByTestId('demo-prompt').inputValue(), { timeout: 60_000 }).toMatch(/^Question: /);
  const settings = page.getByTestId('demo-settings');
  await settings.getByLabel('Max new tokens').fill('12');
  await expect.poll(() => settings.getByLabel('Right column').locator('option').count(), { timeout: 30_000 }).toBeGreaterThan(2);
  await settings.getByLabel('Right column').selectOption({ index: 2 });
  await page.getByTestId('demo-run').click();
  await expect.poll(() => page.getByTestId('demo-output').evaluateAll((els) => els.map((e) => e.getAttribute('data-status'))), { timeout: 300_000 }).toEqual(['done', 'done']);
  await shoot('demo', page.getByTestId('demo-builder'), page.getByTestId('demo-output').last());
}, 600_000);

it('the Adapters page: a share link copied in one click', async () => {
  await show('adapters');
  const flan = page.locator('[data-testid="adapter-row"]').filter({ hasText: FLAN_REPO });
  await flan.first().getByTestId('share-open').click();
  await expect.poll(() => flan.first().getByTestId('share-box').getAttribute('data-copied'), { timeout: 10_000 }).toBe('true');
  await shoot('adapters', page.getByTestId('adapter-import'), page.getByTestId('adapter-list'));
}, 120_000);

it('the Inspect view: two adapters compared, intruder dimensions, contrastive samples', async () => {
  // The paper's adapter against itself after three AdamW steps (tiny-phi's goldens), both imported as files.
  const config = new Uint8Array(readFileSync(join(TINY, 'golden/adapter/adapter_config.json')));
  const after = zipAdapter({ 'adapter_config.json': config, 'adapter_model.safetensors': new Uint8Array(readFileSync(join(TINY, 'golden/lora_after_3_adamw_steps.safetensors'))) });
  writeFileSync(join(work, 'after-3-steps.zip'), after);
  await page.getByTestId('adapter-files').setInputFiles(join(work, 'after-3-steps.zip'));
  await expect.poll(() => page.locator('[data-testid="adapter-row"][data-id="after-3-steps"]').count(), { timeout: 30_000 }).toBe(1);
  await page.getByTestId('open-inspect').click();
  const flanId = await page.getByTestId('inspect-adapter').locator('option').filter({ hasText: 'phi-2_OpenOrca_cot_only' }).first().getAttribute('value');
  await page.getByTestId('inspect-adapter').selectOption(flanId!);
  await page.getByTestId('inspect-compare').selectOption('after-3-steps');
  await page.getByTestId('compute-spectra').click();
  await expect.poll(() => page.getByTestId('update-map').evaluateAll((els) => els.map((e) => e.getAttribute('data-cells'))), { timeout: 60_000 }).toEqual(['12', '12', '12']);
  const intruders = page.getByTestId('inspect-intruders');
  await intruders.getByLabel('k (fine-tuned top vectors)').fill('4');
  await intruders.getByLabel('Pre-trained vectors compared').fill('16');
  await intruders.getByLabel('Iterations').fill('3');
  await intruders.getByTestId('compute-intruders').click();
  await expect.poll(() => page.getByTestId('intruder-chart').getAttribute('data-modules'), { timeout: 300_000 }).toBe('12');
  await page.getByTestId('contrast-prompt').fill('Instruct: Name a colour.\nOutput:');
  const contrast = page.getByTestId('inspect-contrast');
  await contrast.getByLabel('Samples').fill('2');
  await contrast.getByLabel('Max new tokens').fill('8');
  await page.getByTestId('run-contrast').click();
  await expect.poll(() => page.getByTestId('contrast-samples').getAttribute('data-done'), { timeout: 120_000 }).toBe('true');
  await shoot('inspect', page.getByTestId('inspect-view'));
}, 600_000);
