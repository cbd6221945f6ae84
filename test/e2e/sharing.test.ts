import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Download, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EngineApi } from '../../src/worker/api';
import { screenshot } from '../support/browser';
import { HubServer } from '../support/hub-server';
import { type StaticServer } from '../support/static-server';
import { TINY, TINY_ADAPTER, startApp, stopApp } from '../support/app';

// Sharing in one click, on the Adapters page of the built app: exports name the base model's Hub id (a Phi-2
// imported from disk is microsoft/phi-2, not its folder's name), editable first; Share… copies the link of an
// adapter with a public address and says how to get one otherwise; two imports of one adapter get two names;
// a share link's card says where the adapter really comes from, and reads it again once a model is loaded.
// tiny-phi stands in for Phi-2 (its vocabulary and tokenizer at hidden size 64), in a folder named phi-2.
const MODEL_ID = 'files:phi-2:int8';

let app: StaticServer;
let hub: HubServer;
let browser: Browser;
let context: BrowserContext;
let page: Page;
const work = mkdtempSync(join(tmpdir(), 'e2e-sharing-'));
const PHI2_FOLDER = join(work, 'phi-2');

beforeAll(async () => {
  mkdirSync(PHI2_FOLDER);
  for (const name of readdirSync(TINY)) if (statSync(join(TINY, name)).isFile()) copyFileSync(join(TINY, name), join(PHI2_FOLDER, name));
  ({ app, hub, browser } = await startApp({ repos: { 'someone/shared': TINY_ADAPTER } }));
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: app.url });
  page = await context.newPage();
  page.on('pageerror', (err) => console.log(`[browser pageerror] ${err.message}`));
  await page.goto(`${app.url}/#model`);
  // Phi-2 "from disk": the folder chosen on the Model page, then loaded onto the GPU.
  await page.getByTestId('folder-input').setInputFiles(PHI2_FOLDER);
  await page.getByRole('button', { name: 'Import as int8' }).click();
  await page.locator('[data-testid="import-task"][data-status="complete"]').waitFor({ timeout: 120_000 });
  const loaded = await page.evaluate(async (id) => (await (globalThis as unknown as { phi2: EngineApi }).phi2.loadModel(id)).status, MODEL_ID);
  if (loaded !== 'loaded') throw new Error(`tiny-phi as phi-2 did not load: ${loaded}`);
});

afterAll(async () => {
  await stopApp({ browser, hub, app });
  rmSync(work, { recursive: true, force: true });
});

const row = (p: Page, name: string) => p.locator('[data-testid="adapter-row"]').filter({ has: p.locator('strong.name', { hasText: new RegExp(`^${name.replace(/[()]/g, '\\$&')}$`) }) });

async function showSection(p: Page, section: string): Promise<void> {
  await p.evaluate((s) => (location.hash = s), section);
}

/** Clicks "Export PEFT files" and returns the adapter_config.json it downloads, parsed. */
async function exportedConfig(r: ReturnType<typeof row>): Promise<Record<string, unknown>> {
  const downloads: Download[] = [];
  const listener = (d: Download) => downloads.push(d);
  page.on('download', listener);
  await r.getByTestId('export-files').click();
  await expect.poll(() => downloads.length, { timeout: 30_000 }).toBe(2);
  page.off('download', listener);
  const config = downloads.find((d) => d.suggestedFilename() === 'adapter_config.json')!;
  return JSON.parse(readFileSync(await config.path(), 'utf8'));
}

describe('sharing adapters', () => {
  it("exports an adapter trained on a Phi-2 from disk naming microsoft/phi-2, editable first; with no public address, Share… says how to get one", async () => {
    await page.goto(`${app.url}/#train`);
    await expect.poll(() => page.getByTestId('memory-total').count(), { timeout: 60_000 }).toBe(1);
    await page.getByTestId('adapter-name').fill('phi-2-tuned');
    await page.getByTestId('length-unit').selectOption('steps');
    await page.getByTestId('train-steps').fill('1');
    await page.getByTestId('grad-accumulation').fill('1');
    await page.getByLabel('Maximum length (tokens)').fill('16');
    await page.getByTestId('start-training').click();
    await expect.poll(() => page.getByTestId('train-run').getAttribute('data-outcome'), { timeout: 280_000 }).toBe('finished');

    await showSection(page, 'adapters');
    const trained = row(page, 'phi-2-tuned');
    await trained.waitFor({ timeout: 30_000 });
    expect(await trained.getByTestId('export-base-value').innerText()).toBe('microsoft/phi-2');
    expect(await trained.innerText()).toMatch(/Base model\s+microsoft\/phi-2/);
    expect(await exportedConfig(trained)).toMatchObject({ base_model_name_or_path: 'microsoft/phi-2', peft_type: 'LORA' });

    // Another base model's id, given before exporting, is what the files name.
    await trained.getByTestId('export-base-edit').click();
    await trained.getByTestId('export-base-input').fill('someone/phi-2-merged');
    await trained.getByRole('button', { name: 'Use it' }).click();
    expect(await trained.getByTestId('export-base-value').innerText()).toBe('someone/phi-2-merged');
    expect(await exportedConfig(trained)).toMatchObject({ base_model_name_or_path: 'someone/phi-2-merged' });

    // Trained here, it has no public address: two lines say how to give it one.
    await trained.getByTestId('share-open').click();
    const none = trained.getByTestId('share-none');
    await none.waitFor();
    const lines = (await none.innerText()).split('\n').filter((l) => l.trim());
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/no public address yet/);
    expect(lines[1]).toMatch(/Publish to the Hub….*any https host that allows CORS.*\?adapter=/);
    await screenshot(page, 'adapters-share-none');
  });

  it('gives two imports of the same adapter two names', async () => {
    const files = [join(TINY_ADAPTER, 'adapter_config.json'), join(TINY_ADAPTER, 'adapter_model.safetensors')];
    await page.getByTestId('adapter-files').setInputFiles(files);
    await expect.poll(() => page.getByTestId('adapter-notice').innerText(), { timeout: 30_000 }).toBe('Imported "uploaded-adapter".');
    await page.getByTestId('adapter-files').setInputFiles(files);
    await expect.poll(() => page.getByTestId('adapter-notice').innerText(), { timeout: 30_000 }).toBe('Imported "uploaded-adapter (2)".');
    expect(await row(page, 'uploaded-adapter').count()).toBe(1);
    expect(await row(page, 'uploaded-adapter (2)').count()).toBe(1);
    // Its config names no base model: the page asks for one rather than inventing it.
    expect(await row(page, 'uploaded-adapter').getByTestId('export-base').innerText()).toMatch(/^Exports name no base model: give its Hub id$/);
  });

  it('copies the share link of an adapter that came from a public address, in one click', async () => {
    const folder = `${hub.url}/someone/shared/resolve/main/`;
    await page.getByTestId('adapter-source').fill(folder);
    await page.getByTestId('adapter-inspect').click();
    await page.getByTestId('adapter-download-button').click();
    const shared = row(page, 'shared');
    await shared.waitFor({ timeout: 60_000 });
    // Not the Hugging Face Hub: a server with the Hub's URL layout, named by its address.
    expect(await shared.innerText()).toContain(`from someone/shared on ${new URL(hub.url).host}`);
    expect(await shared.innerText()).not.toContain('from the Hub');
    await shared.getByTestId('share-open').click();
    const box = shared.getByTestId('share-box');
    await expect.poll(() => box.getAttribute('data-copied'), { timeout: 10_000 }).toBe('true');
    const link = `${app.url}/?adapter=${encodeURIComponent(folder)}#adapters`;
    expect(await box.getByTestId('share-url').inputValue()).toBe(link);
    expect(await box.innerText()).toMatch(/^✓ Share link copied/);
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(link);
    await screenshot(page, 'adapters-share-copied');
  });

  it("opens the link in a fresh tab: the card says where the adapter comes from, and whether it fits once a model is loaded", async () => {
    const folder = `${hub.url}/someone/shared/resolve/main/`;
    const other = await context.newPage();
    await other.goto(`${app.url}/?adapter=${encodeURIComponent(folder)}`);
    const card = other.getByTestId('share-link');
    await expect.poll(() => card.getAttribute('data-status'), { timeout: 30_000 }).toBe('unseen');
    expect(await other.getByTestId('share-where').innerText()).toBe(`It comes from ${new URL(hub.url).origin}, repository someone/shared, not the Hugging Face Hub.`);
    await other.getByTestId('share-inspect').click();
    await expect.poll(() => card.getAttribute('data-status'), { timeout: 60_000 }).toBe('ready');
    // A new tab has its own worker: no model is on its GPU yet.
    expect(await other.getByTestId('share-fit').innerText()).toMatch(/No model is loaded/);
    expect(await card.getByTestId('share-confirm').innerText()).toBe('Download it');

    await showSection(other, 'model');
    const stored = other.locator(`[data-testid="model-row"][data-model-id="${MODEL_ID}"]`);
    await stored.getByRole('button', { name: 'Load onto GPU' }).click();
    await expect.poll(() => stored.getAttribute('data-loaded'), { timeout: 120_000 }).toBe('true');
    await showSection(other, 'adapters');
    await expect.poll(() => other.getByTestId('share-fit').innerText(), { timeout: 60_000 }).toBe('It fits the loaded model, phi-2.');
    expect(await card.getByTestId('share-confirm').innerText()).toBe('Download and load it');
    await screenshot(other, 'adapters-share-card-fits');
    await other.close();
  });
});
