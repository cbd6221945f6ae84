import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closedPortUrl } from '../support/closed-port';
import { screenshot } from '../support/browser';
import { HubServer, TEST_REVISION } from '../support/hub-server';
import { type StaticServer } from '../support/static-server';
import { TINY, TINY_REPO, startApp, stopApp } from '../support/app';

// Without a network, the Hub's download and the Hub's dataset loader say at their first failure that the Hub
// cannot be reached, offer the files on disk instead, and retry quietly (one line with a count) a few times
// only. The Hub is "unreachable" here as a server that is down is: its port refuses connections. And the
// repository check keeps its panel open and speaks of checking.

let app: StaticServer;
let hub: HubServer;
let browser: Browser;
let down: string;

beforeAll(async () => {
  ({ app, hub, browser } = await startApp());
  down = await closedPortUrl();
});

afterAll(async () => {
  await stopApp({ browser, hub, app });
});

async function open(hash: string): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on('pageerror', (err) => console.log(`[browser pageerror] ${err.message}`));
  await page.goto(`${app.url}/${hash}`);
  return { context, page };
}

/** Opens "Advanced" of the model's Hub card, if closed, and fills it as a user would. */
async function fillHubForm(page: Page, settings: { repo: string; revision: string; baseUrl: string }): Promise<void> {
  const card = page.getByTestId('hub-card');
  if (!(await card.locator('details.advanced').evaluate((d) => (d as HTMLDetailsElement).open))) {
    await card.getByText('Advanced: repository, revision, server').click();
  }
  await card.getByLabel('Repository').fill(settings.repo);
  await card.getByLabel('Revision (commit, branch or tag)').fill(settings.revision);
  await card.getByLabel('Base URL').fill(settings.baseUrl);
}

const focusedId = (page: Page) => page.evaluate(() => document.activeElement?.id ?? null);

describe('the Hub cannot be reached', () => {
  it('the model download says so at its first failure, retries in one counted line, then offers the files on disk', async () => {
    const { context, page } = await open('#model');
    await fillHubForm(page, { repo: TINY_REPO, revision: TEST_REVISION, baseUrl: down });
    const task = page.getByTestId('import-task');
    await page.getByRole('button', { name: `Download ${TINY_REPO} (int8)` }).click();

    // While it still runs: said plainly, with the count, and the way out.
    const offline = page.getByTestId('hub-unreachable');
    await offline.waitFor({ timeout: 30_000 });
    expect(await task.getAttribute('data-status')).toBe('running');
    const said = await offline.innerText();
    expect(said).toMatch(/^The Hub cannot be reached\./);
    expect(said).toContain(`Could not reach ${down} for config.json of ${TINY_REPO}`);
    expect(said).toMatch(/Trying again in \d s \(attempt [23] of 3\); or stop and import the model's files from disk\./);
    await screenshot(page, 'model-hub-unreachable');

    // It gives up after three quick attempts, with one line for all of them, and says what to do.
    await expect.poll(() => task.getAttribute('data-status'), { timeout: 60_000 }).toBe('failed');
    const problem = page.getByTestId('import-problem');
    expect(await problem.getAttribute('data-code')).toBe('unreachable');
    const text = await problem.innerText();
    expect(text).toMatch(/^The Hub cannot be reached/);
    expect(text).toContain('Gave up after 3 attempts.');
    expect(text).toContain("Or import the model's files from disk.");
    expect(await task.locator('.notices li').count()).toBe(0);
    expect(await page.getByTestId('hub-unreachable').count()).toBe(0);
    await page.getByRole('button', { name: 'Import the files from disk instead' }).click();
    await expect.poll(() => focusedId(page), { timeout: 10_000 }).toBe('import-model-folder');
    await screenshot(page, 'model-hub-unreachable-failed');

    // Tried again, the way out stops the download at once and leads to the local import.
    await task.getByRole('button', { name: 'Try again' }).click();
    await offline.waitFor({ timeout: 30_000 });
    await offline.getByRole('button', { name: "stop and import the model's files from disk" }).click();
    await expect.poll(() => task.getAttribute('data-status'), { timeout: 30_000 }).toBe('paused');
    await expect.poll(() => focusedId(page), { timeout: 10_000 }).toBe('import-model-folder');
    expect(await page.getByRole('button', { name: 'Choose a folder…' }).isEnabled()).toBe(true);
    await context.close();
  });

  it('the Hub dataset loader says so at its first failure, retries in one counted line, then offers a file upload', async () => {
    const { context, page } = await open('#data');
    const card = page.getByTestId('hub-card');
    await card.getByText('Advanced').click();
    await card.getByLabel('Dataset viewer API base URL').fill(down);
    await card.getByRole('button', { name: 'Load rows' }).click();

    const offline = card.getByTestId('hub-unreachable');
    await offline.waitFor({ timeout: 30_000 });
    const said = await offline.innerText();
    expect(said).toMatch(/^The Hub cannot be reached\. network error: .*\. Trying again in \d s \(attempt [23] of 3\); or cancel and upload the dataset as a file\.$/);
    expect(await card.getByTestId('hub-retry-line').count()).toBe(0);
    await screenshot(page, 'data-hub-unreachable');

    await expect.poll(() => card.getAttribute('data-status'), { timeout: 60_000 }).toBe('error');
    const error = card.getByTestId('hub-error');
    const text = await error.innerText();
    expect(text).toMatch(/^The Hub cannot be reached\./);
    expect(text).toMatch(/The Hub's dataset server \(127\.0\.0\.1:\d+\) cannot be reached: network error: .* \(3 attempts\)\./);
    // The offer opens the upload's own file chooser; the file chosen there becomes the data.
    const chooser = page.waitForEvent('filechooser');
    await error.getByText('Upload a file instead…').click();
    await (await chooser).setFiles({ name: 'rows.jsonl', mimeType: 'application/x-ndjson', buffer: Buffer.from('{"q":"a","r":"b"}\n{"q":"c","r":"d"}\n') });
    await page.getByTestId('mapping-panel').waitFor({ timeout: 30_000 });
    expect(await page.getByTestId('mapping-panel').innerText()).toContain('rows.jsonl');
    await context.close();
  });
});

describe('Advanced → Check repository', () => {
  it('keeps the panel open and shows the result, also with the default settings', async () => {
    const { context, page } = await open('#model');
    const config = readFileSync(join(TINY, 'config.json'));
    // The default repository (microsoft/phi-2 on huggingface.co) answered by a stand-in: no network is needed.
    await context.route('https://huggingface.co/**', (route) =>
      route.request().url().endsWith('/config.json') ? route.fulfill({ status: 200, body: config, headers: { 'access-control-allow-origin': '*' } }) : route.abort('connectionrefused'),
    );
    const card = page.getByTestId('hub-card');
    const details = card.locator('details.advanced');
    expect(await details.evaluate((d) => (d as HTMLDetailsElement).open)).toBe(false);
    await card.getByText('Advanced: repository, revision, server').click();
    await card.getByRole('button', { name: 'Check repository' }).click();
    await card.getByTestId('hub-inspection').waitFor({ timeout: 30_000 });
    expect(await details.evaluate((d) => (d as HTMLDetailsElement).open)).toBe(true);
    expect(await card.getByTestId('hub-inspection').isVisible()).toBe(true);
    expect(await card.getByTestId('hub-inspection').innerText()).toContain('A Phi model: 2 layers, hidden 64, 2 heads of 32, vocabulary 51,200.');
    await screenshot(page, 'model-check-repository');

    // Unreachable: the problem speaks of checking again, never of resuming a download.
    await context.unroute('https://huggingface.co/**');
    await context.route('https://huggingface.co/**', (route) => route.abort('internetdisconnected'));
    await card.getByRole('button', { name: 'Check repository' }).click();
    const problem = card.getByTestId('hub-inspection-problem');
    await problem.waitFor({ timeout: 30_000 });
    expect(await details.evaluate((d) => (d as HTMLDetailsElement).open)).toBe(true);
    let text = await problem.innerText();
    expect(text).toMatch(/^The Hub cannot be reached/);
    expect(text).toMatch(/then check again\. Or import the model's files from disk\./);
    expect(text).not.toMatch(/resum|download/i);

    // A wrong repository on a server that answers: the same, with the 404.
    await fillHubForm(page, { repo: 'test/no-such-model', revision: TEST_REVISION, baseUrl: hub.url });
    await card.getByRole('button', { name: 'Check repository' }).click();
    await expect.poll(() => problem.getAttribute('data-code'), { timeout: 30_000 }).toBe('not-found');
    text = await problem.innerText();
    expect(text).toContain('HTTP 404');
    expect(text).not.toMatch(/resum/i);
    expect(await details.evaluate((d) => (d as HTMLDetailsElement).open)).toBe(true);
    await screenshot(page, 'model-check-repository-404');
    await context.close();
  });
});
