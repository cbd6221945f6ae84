import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, openPage, screenshot } from '../support/browser';
import { serveStatic, type StaticServer } from '../support/static-server';

// The Data page's Prepare step follows the data just loaded: labelled data becomes symbol-tuning prompts from
// that data (not the bundled pools), instruction data becomes instruction rows. The user's own choice stands
// until other data comes.
const DIST = process.env.PHI2_E2E_DIST ?? join(import.meta.dirname, '../../dist');

let app: StaticServer;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  app = await serveStatic(DIST);
  browser = await launchBrowser();
  page = await openPage(browser, `${app.url}/#data`);
});

afterAll(async () => {
  await browser?.close();
  await app?.close();
});

const REVIEWS = ['text,label', ...Array.from({ length: 24 }, (_, i) => `review number ${i} ${i % 2 ? 'was great' : 'was dull'},${i % 2 ? 'positive' : 'negative'}`)].join('\n');
const QA = Array.from({ length: 6 }, (_, i) => JSON.stringify({ question: `What is ${i} + ${i}?`, response: String(2 * i) })).join('\n');

async function upload(name: string, body: string, mimeType: string): Promise<void> {
  await page.locator('#data-file').setInputFiles({ name, mimeType, buffer: Buffer.from(body) });
  const mapping = page.getByTestId('mapping-panel');
  await expect.poll(async () => (await mapping.count()) > 0 && (await mapping.innerText()).includes(name), { timeout: 30_000 }).toBe(true);
}

const checked = (id: string) => page.getByTestId(id).isChecked();

describe('the Prepare step follows the data', () => {
  it('turns labelled data into symbol-tuning prompts from that data, and instruction data into instruction rows', async () => {
    await page.getByRole('heading', { name: '1. Get data' }).waitFor({ timeout: 30_000 });
    expect(await checked('mode-instruction')).toBe(true);

    await upload('reviews.csv', REVIEWS, 'text/csv');
    await expect.poll(() => checked('mode-symbol'), { timeout: 10_000 }).toBe(true);
    expect(await checked('pool-source-own')).toBe(true);
    expect(await page.getByTestId('symbol-options').innerText()).toContain('your data: text → label');
    await page.getByTestId('symbol-count').fill('6');
    await page.getByTestId('symbol-per-class').fill('2');
    await page.getByRole('button', { name: 'Generate symbol-tuning prompts' }).click();
    await expect.poll(() => page.getByTestId('prepared-count').count(), { timeout: 60_000 }).toBe(1);
    expect(await page.getByTestId('prepared-count').innerText()).toBe('6 prompts');
    expect(await page.getByTestId('prepared-example').first().textContent()).toMatch(/review number \d+ was (great|dull)/);
    await screenshot(page, 'data-follows-labelled');

    await upload('qa.jsonl', QA, 'application/x-ndjson');
    await expect.poll(() => checked('mode-instruction'), { timeout: 10_000 }).toBe(true);
    // Asked for symbol prompts now, the bundled pools stand in: this data has no labels.
    await page.getByTestId('mode-symbol').check();
    expect(await checked('pool-source-bundled')).toBe(true);

    // The user's choice stands while the data stays; new labelled data chooses again.
    await page.getByTestId('mode-instruction').check();
    await upload('reviews-2.csv', REVIEWS, 'text/csv');
    await expect.poll(() => checked('mode-symbol'), { timeout: 10_000 }).toBe(true);
    expect(await checked('pool-source-own')).toBe(true);
  });
});
