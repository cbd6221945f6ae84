import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EngineApi } from '../../src/worker/api';
import { screenshot } from '../support/browser';
import { HubServer, TEST_REVISION } from '../support/hub-server';
import { type StaticServer } from '../support/static-server';
import { TINY_MODEL_ID, TINY_REPO, startApp, stopApp } from '../support/app';

// Two tabs of the built app in one browser profile (one IndexedDB, one set of Web Locks). The first tab
// holds the model's write lock, as it does while it imports or repairs the model; the second tab's
// download of the same model waits, says why on the Model page, and goes on once the lock is released.

let app: StaticServer;
let hub: HubServer;
let browser: Browser;
let context: BrowserContext;

beforeAll(async () => {
  ({ app, hub, browser } = await startApp());
  context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
});

afterAll(async () => {
  await stopApp({ browser, hub, app });
});

async function open(): Promise<Page> {
  const page = await context.newPage();
  page.on('pageerror', (err) => console.log(`[browser pageerror] ${err.message}`));
  await page.goto(`${app.url}/#model`);
  return page;
}

describe('two tabs, one model', () => {
  it('makes the second tab wait for the first one writing the model, saying so, then completes', async () => {
    const first = await open();
    const second = await open();
    // Tab 1 writes the model: it holds the model's write lock (the worker's own, shared by every tab).
    await first.evaluate((id) => {
      const w = globalThis as unknown as { releaseModel?: () => void };
      void navigator.locks.request(`phi2-model-write:${id}`, () => new Promise<void>((resolve) => (w.releaseModel = resolve)));
    }, TINY_MODEL_ID);
    await expect.poll(() => first.evaluate(async () => (await navigator.locks.query()).held?.length ?? 0)).toBe(1);

    const card = second.getByTestId('hub-card');
    await card.getByText('Advanced: repository, revision, server').click();
    await card.getByLabel('Repository').fill(TINY_REPO);
    await card.getByLabel('Revision (commit, branch or tag)').fill(TEST_REVISION);
    await card.getByLabel('Base URL').fill(hub.url);
    await second.locator('input[name="weight-mode"][value="int8"]').check();
    await second.getByRole('button', { name: `Download ${TINY_REPO} (int8)` }).click();
    const task = second.getByTestId('import-task');
    await expect
      .poll(() => task.innerText(), { timeout: 60_000 })
      .toContain('Another tab is writing this model (importing, repairing or deleting it); this import waits until it is done.');
    // Nothing of the weights is fetched while it waits.
    expect(hub.requests.some((r) => /\.safetensors$/.test(r.path))).toBe(false);
    await screenshot(second, 'model-waiting-for-another-tab');

    await first.evaluate(() => (globalThis as unknown as { releaseModel: () => void }).releaseModel());
    await expect.poll(() => task.getAttribute('data-status'), { timeout: 120_000 }).toBe('complete');
    const listed = await second.evaluate(async () => (await (globalThis as unknown as { phi2: EngineApi }).phi2.listModels()).map((m) => [m.id, m.complete]));
    expect(listed).toEqual([[TINY_MODEL_ID, true]]);
    // And the first tab, reading the same database, finds it complete and intact.
    const verdict = await first.evaluate((id) => (globalThis as unknown as { phi2: EngineApi }).phi2.verifyModel(id), TINY_MODEL_ID);
    expect(verdict.status).toBe('ok');
  });
});
