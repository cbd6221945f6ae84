import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Download, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EngineApi } from '../../src/worker/api';
import { launchBrowser, openPage, screenshot } from '../support/browser';
import { HubServer, TEST_REVISION } from '../support/hub-server';
import { serveStatic, type StaticServer } from '../support/static-server';

// The built app (npm run build first; PHI2_E2E_DIST may point at another build) in Chromium on
// SwiftShader: tiny-phi is downloaded from a stand-in Hub and loaded through the Model page's API, then
// trained from the Train page for 3 steps, reloaded mid-run and resumed; its adapter is exported as
// files, deleted, and brought back through a share link that points at the exported files.
const DIST = process.env.PHI2_E2E_DIST ?? join(import.meta.dirname, '../../dist');
const TINY = join(import.meta.dirname, '../../../shared/fixtures/tiny-phi');
const REPO = 'test/tiny-phi';
const MODEL_ID = `${REPO}@${TEST_REVISION}:int8`;
const ADAPTER = 'e2e-adapter';

let app: StaticServer;
let hub: HubServer;
let shareHub: HubServer | null = null;
let browser: Browser;
let page: Page;
const exported = mkdtempSync(join(tmpdir(), 'e2e-adapter-'));

/** Every long task (main thread busy over 50 ms) the page has seen, kept from the start. */
const LONGTASK_PROBE = `
  window.__longtasks = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__longtasks.push({ start: e.startTime, duration: e.duration });
  }).observe({ type: 'longtask', buffered: true });
`;

beforeAll(async () => {
  app = await serveStatic(DIST);
  hub = await HubServer.start({ repos: { [REPO]: TINY } });
  browser = await launchBrowser();
  page = await openPage(browser, `${app.url}/#model`);
  // For this page now (entries are buffered from its start) and for every reload.
  await page.context().addInitScript(LONGTASK_PROBE);
  await page.evaluate(LONGTASK_PROBE);
});

afterAll(async () => {
  await browser?.close();
  await hub?.close();
  await shareHub?.close();
  await app?.close();
  rmSync(exported, { recursive: true, force: true });
});

/** The Model page's worker API, for set-up: download tiny-phi from the stand-in Hub and load it. */
async function downloadModel(p: Page): Promise<string> {
  return p.evaluate(
    async ([baseUrl, revision]) => {
      const api = (globalThis as unknown as { phi2: EngineApi }).phi2;
      return (await api.downloadFromHub({ repo: 'test/tiny-phi', revision, baseUrl }, 'int8')).status;
    },
    [hub.url, TEST_REVISION] as const,
  );
}

async function loadModel(p: Page): Promise<string> {
  return p.evaluate(async (id) => (await (globalThis as unknown as { phi2: EngineApi }).phi2.loadModel(id)).status, MODEL_ID);
}

async function showSection(p: Page, section: string): Promise<void> {
  await p.evaluate((s) => (location.hash = s), section);
}

async function longTasksSince(p: Page, since: number): Promise<Array<{ start: number; duration: number }>> {
  return p.evaluate((t0) => (globalThis as unknown as { __longtasks: Array<{ start: number; duration: number }> }).__longtasks.filter((e) => e.start >= t0), since);
}

const run = () => page.getByTestId('train-run');

describe('training on the Train page', () => {
  it('gets tiny-phi through the Model page API and shows the Train page with its memory estimate', async () => {
    expect(await downloadModel(page)).toBe('complete');
    expect(await loadModel(page)).toBe('loaded');
    await showSection(page, 'train');
    const setup = page.getByTestId('train-setup');
    await expect.poll(() => page.getByTestId('memory-total').count(), { timeout: 30_000 }).toBe(1);
    expect(await page.getByTestId('memory-total').innerText()).toMatch(/MiB|GiB/);
    // Stating a GPU too small for the run is caught before anything is allocated.
    await page.getByTestId('gpu-memory').fill('0.001');
    await expect.poll(() => page.getByTestId('train-memory').getAttribute('data-fits')).toBe('false');
    expect(await page.getByTestId('train-memory').innerText()).toMatch(/Does not fit in the 1.02 MiB you stated/);
    await page.getByTestId('gpu-memory').fill('');
    await expect.poll(() => page.getByTestId('train-memory').getAttribute('data-fits')).toBe('');
    expect(await setup.innerText()).toContain('Paper: instruction tuning');
    // The paper's 8-bit AdamW: the moments take a quarter of the memory, and the estimate says so.
    const totalWith = async () => page.getByTestId('memory-total').innerText();
    const f32Total = await totalWith();
    expect(await page.getByTestId('optimizer').inputValue()).toBe('adamw');
    await page.getByTestId('optimizer').selectOption('adamw-8bit:256');
    await expect.poll(() => page.getByTestId('train-memory').innerText()).toMatch(/8-bit AdamW moments/);
    expect(await totalWith()).not.toBe(f32Total);
    expect(await page.getByTestId('optimizer-saving').innerText()).toMatch(/8-bit moments: .+ instead of .+ of f32 moments/);
    await page.getByTestId('optimizer').selectOption('adamw');
    await expect.poll(() => page.getByTestId('train-memory').innerText()).toMatch(/AdamW moments \(f32\)/);
    expect(await setup.innerText()).toContain("app's choice");
    await screenshot(page, 'train-setup');
  });

  it('trains 3 steps with a live loss chart, survives a reload mid-run and resumes to the end', async () => {
    await page.getByTestId('adapter-name').fill(ADAPTER);
    await page.getByTestId('length-unit').selectOption('steps');
    await page.getByTestId('train-steps').fill('3');
    await page.getByTestId('grad-accumulation').fill('1');
    await page.getByLabel('Maximum length (tokens)').fill('16');
    await page.getByTestId('checkpoint-every').fill('1');
    expect(await page.getByTestId('plan-problems').count()).toBe(0);

    const t0 = await page.evaluate(() => performance.now());
    await page.getByTestId('start-training').click();
    // The first step's loss reaches the chart (it is read back one step late).
    await expect.poll(async () => Number(await page.getByTestId('loss-chart').getAttribute('data-points')), { timeout: 240_000 }).toBeGreaterThanOrEqual(1);
    expect(await run().innerText()).toMatch(/Step\s+\d of 3/);
    await screenshot(page, 'train-running');
    // Wait for the checkpoint of step 1 (saved once step 1 is done), then reload in the middle of the run.
    await expect.poll(() => run().innerText(), { timeout: 240_000 }).toMatch(/Checkpoint saved at step [12]/);
    const longTasks = await longTasksSince(page, t0);
    console.log(`long tasks while training: ${JSON.stringify(longTasks)}`);
    expect(longTasks.filter((e) => e.duration > 200)).toEqual([]);
    await page.reload();

    // After the reload the page offers the run back; resuming loads the model again by itself.
    const resumable = page.getByTestId('resumable-run');
    await expect.poll(() => resumable.count(), { timeout: 60_000 }).toBe(1);
    expect(await resumable.innerText()).toMatch(new RegExp(`${ADAPTER}[\\s\\S]*step [12] of 3`));
    await screenshot(page, 'train-resume-offer');
    const t1 = await page.evaluate(() => performance.now());
    await page.getByTestId('resume-run').click();
    await expect.poll(() => run().getAttribute('data-outcome'), { timeout: 280_000 }).toBe('finished');
    expect(Number(await page.getByTestId('loss-chart').getAttribute('data-points'))).toBe(3);
    expect(await page.getByTestId('train-finished').innerText()).toContain(`The adapter ${ADAPTER} is saved in this browser, loaded beside the model and active`);
    expect((await longTasksSince(page, t1)).filter((e) => e.duration > 200)).toEqual([]);
    expect(await page.getByTestId('resumable-run').count()).toBe(0);
    await screenshot(page, 'train-finished');
  });

  it('exports the adapter as PEFT files, deletes it, and gets it back through a share link', async () => {
    await showSection(page, 'adapters');
    const row = page.locator(`[data-testid="adapter-row"][data-id="${ADAPTER}"]`);
    await expect.poll(() => row.count(), { timeout: 30_000 }).toBe(1);
    expect(await row.getAttribute('data-active')).toBe('true');
    const downloads: Download[] = [];
    page.on('download', (d) => downloads.push(d));
    await row.getByTestId('export-files').click();
    await expect.poll(() => downloads.length, { timeout: 30_000 }).toBe(2);
    for (const d of downloads) await d.saveAs(join(exported, d.suggestedFilename()));
    expect(downloads.map((d) => d.suggestedFilename()).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    const config = JSON.parse(readFileSync(join(exported, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ peft_type: 'LORA', r: 64, lora_alpha: 64, base_model_name_or_path: 'test/tiny-phi' });
    await screenshot(page, 'adapters-after-training');

    await row.getByTestId('adapter-delete').click();
    await row.getByTestId('adapter-delete-confirm').click();
    await expect.poll(() => row.count(), { timeout: 30_000 }).toBe(0);

    // The exported files, published on a Hub-like server; the link opens the app on them.
    shareHub = await HubServer.start({ repos: { 'someone/shared-adapter': exported } });
    const folder = `${shareHub.url}/someone/shared-adapter/resolve/main/`;
    await page.goto(`${app.url}/?adapter=${encodeURIComponent(folder)}`);
    const card = page.getByTestId('share-link');
    await expect.poll(() => card.getAttribute('data-status'), { timeout: 60_000 }).toBe('ready');
    const text = await card.innerText();
    expect(text).toContain('someone/shared-adapter');
    expect(text).toMatch(/Base model\s+test\/tiny-phi/);
    expect(text).toMatch(/r 64, alpha 64/);
    expect(text).toMatch(/q_proj, k_proj, v_proj, dense, fc1, fc2/);
    expect(page.url()).toContain('#adapters');
    await screenshot(page, 'adapters-share-link');
    await page.getByTestId('share-confirm').click();
    await expect.poll(() => card.getAttribute('data-status'), { timeout: 60_000 }).toBe('done');
    expect(page.url()).not.toContain('adapter=');
    const back = page.locator('[data-testid="adapter-row"][data-id="shared-adapter"]');
    await expect.poll(() => back.count(), { timeout: 30_000 }).toBe(1);
    expect(await back.innerText()).toContain('from the Hub: someone/shared-adapter');

    // With the model loaded again, the shared adapter goes onto the GPU beside it.
    expect(await loadModel(page)).toBe('loaded');
    await showSection(page, 'model');
    await showSection(page, 'adapters');
    await back.getByTestId('adapter-load').click();
    await expect.poll(() => back.getAttribute('data-active'), { timeout: 60_000 }).toBe('true');
    await screenshot(page, 'adapters-shared-loaded');
  });
});
