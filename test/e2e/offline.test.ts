import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { launchBrowser, screenshot } from '../support/browser';
import { serveStatic, type StaticServer } from '../support/static-server';

// After the first visit the service worker serves the app shell, so the page opens with no network
// (the model itself lives in IndexedDB).
let server: StaticServer;
let browser: Browser;

beforeAll(async () => {
  server = await serveStatic(join(import.meta.dirname, '../../dist'));
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

it('opens offline after the first visit', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto(server.url);
  // Wait until the service worker controls the page and has cached what the page loaded.
  const ready = await page.evaluate(() =>
    Promise.race([navigator.serviceWorker.ready.then(() => 'ready'), new Promise((r) => setTimeout(() => r('no service worker became ready in 20 s'), 20_000))]),
  );
  expect(ready).toBe('ready');
  await page.reload();
  await expect.poll(() => page.evaluate(() => Boolean(navigator.serviceWorker.controller)), { timeout: 30_000 }).toBe(true);
  await page.getByRole('heading', { name: 'Phi-2 LoRA lab' }).waitFor();
  await context.setOffline(true);
  await page.reload();
  await page.getByRole('heading', { name: 'Phi-2 LoRA lab' }).waitFor({ timeout: 30_000 });
  expect(await page.getByRole('navigation', { name: 'Sections' }).innerText()).toContain('Model');
  await screenshot(page, 'offline-shell');
  await context.close();
});
