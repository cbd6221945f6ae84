import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EngineApi } from '../../src/worker/api';
import { openPage, screenshot } from '../support/browser';
import { HubServer } from '../support/hub-server';
import { type StaticServer } from '../support/static-server';
import { TINY, TINY_ADAPTER, TINY_REPO, loadTinyPhi, startApp, stopApp } from '../support/app';

// The built app in Chromium on SwiftShader, with tiny-phi from a stand-in for the Hub, loaded through the
// Model area's worker API. tiny-phi's text is gibberish: the tests check the page's mechanics (the exact
// prompt, streaming, determinism, sampling, cancelling), not its answers.
/** Served by the stand-in Hub: tiny-phi's PEFT golden adapter (r 4) under the paper's adapter name. */
const FLAN_REPO = 'ChunB1/phi-2_OpenOrca_cot_only';

let app: StaticServer;
let hub: HubServer;
let browser: Browser;
let page: Page;
let adapterId: string;
let greedyText: string;

beforeAll(async () => {
  ({ app, hub, browser } = await startApp({ repos: { [TINY_REPO]: TINY, [FLAN_REPO]: TINY_ADAPTER } }));
  page = await openPage(browser, `${app.url}/#model`);
  await loadTinyPhi(page, hub);
  adapterId = await page.evaluate(
    async ({ repo, baseUrl }) => (await (globalThis as unknown as { phi2: EngineApi }).phi2.loadAdapterFromHub(repo, undefined, baseUrl)).id,
    { repo: FLAN_REPO, baseUrl: hub.url },
  );
  // Opened after the load, so the page finds the model on its first look.
  await page.goto(`${app.url}/#demo`);
});

afterAll(async () => {
  await stopApp({ browser, hub, app });
});

const prompt = () => page.getByTestId('demo-prompt');
const output = () => page.getByTestId('demo-output').first();

/** Every distinct text the output showed while generating, recorded in the page as it changed. */
async function watchOutput(): Promise<void> {
  await page.evaluate(() => {
    const seen: string[] = [];
    (globalThis as unknown as { seenTexts: string[] }).seenTexts = seen;
    const observer = new MutationObserver(() => {
      const text = document.querySelector('[data-testid="demo-text"]')?.textContent ?? '';
      if (seen[seen.length - 1] !== text) seen.push(text);
    });
    observer.observe(document.querySelector('main')!, { subtree: true, childList: true, characterData: true });
  });
}

async function runAndWait(): Promise<string> {
  await page.getByTestId('demo-run').click();
  await expect.poll(() => output().getAttribute('data-status'), { timeout: 180_000 }).toMatch(/^(done|cancelled|failed)$/);
  expect(await output().getAttribute('data-status')).toBe('done');
  return page.getByTestId('demo-text').first().innerText();
}

describe('the Demo page', () => {
  it('builds an 8-shot prompt from a bundled pool and shows it exactly, with its token count', async () => {
    await expect.poll(() => prompt().inputValue(), { timeout: 60_000 }).toMatch(/^Question: /);
    const text = await prompt().inputValue();
    // instruction_symbol by default: the instruction, 8 exemplars with two symbols, an open query.
    expect(text.match(/^Question: Label the following tweet based on whether it contains hate speech\.$/gm)).toHaveLength(9);
    expect(text.endsWith('\nAnswer: \n')).toBe(true);
    const answers = [...text.matchAll(/^Answer: (.+)$/gm)].map((m) => m[1]);
    expect(answers).toHaveLength(8);
    expect(new Set(answers).size).toBe(2);
    const target = await page.getByTestId('demo-target').innerText();
    expect(answers).toContain(target.match(/Answer expected: (\S+)/)![1]);
    await expect.poll(() => page.getByTestId('demo-token-count').innerText().catch(() => ''), { timeout: 30_000 }).toMatch(/^\d+ tokens as sent\.$/);
  });

  it('uses the format, the dataset and symbols typed by hand', async () => {
    const builder = page.getByTestId('demo-builder');
    await builder.getByLabel('Dataset').selectOption('subj');
    await builder.getByLabel('Format').selectOption('no_instruction_symbol');
    await builder.getByLabel('Typed by hand, one per class').check();
    await builder.getByLabel('for “Subjective”').fill('Zorp');
    await builder.getByLabel('for “Objective”').fill('Quix');
    await builder.getByRole('button', { name: 'Build a new prompt' }).click();
    await expect.poll(() => prompt().inputValue()).toMatch(/Answer: Zorp\n/);
    const text = await prompt().inputValue();
    expect(text).toMatch(/Answer: Quix\n/);
    expect(text).not.toContain('Is the following sentence subjective or objective?');
    await builder.getByLabel('for “Objective”').fill('Zorp');
    await builder.getByRole('button', { name: 'Build a new prompt' }).click();
    await expect.poll(() => builder.getByRole('alert').innerText().catch(() => '')).toBe('The symbols must differ from each other.');
    await builder.getByLabel('Format').selectOption('instruction_label');
    await builder.getByRole('button', { name: 'Build a new prompt' }).click();
    await expect.poll(() => prompt().inputValue()).toMatch(/^Question: Is the following sentence subjective or objective\?\n/);
  });

  it('streams the answer token by token, greedy and repeatable', async () => {
    await page.getByTestId('demo-settings').getByLabel('Max new tokens').fill('6');
    await watchOutput();
    const first = await runAndWait();
    const seen = await page.evaluate(() => (globalThis as unknown as { seenTexts: string[] }).seenTexts);
    // Several growing texts appeared before the last one: it streamed.
    const growing = seen.filter((t) => t.replace('▍', '').length > 0);
    expect(growing.length).toBeGreaterThanOrEqual(2);
    const stats = await output().innerText();
    expect(stats).toMatch(/(\d) new tokens after (\d+) prompt tokens/);
    const n = Number(stats.match(/(\d) new tokens after/)![1]);
    expect(n === 6 || /end-of-text/.test(stats)).toBe(true);
    // The answer is checked against the expected label while the prompt is the one built.
    expect(await page.getByTestId('demo-verdict').innerText()).toMatch(/^(Right|Wrong) by the answer verdict \(the evaluation's default\)/);
    await screenshot(page, 'demo-streamed');
    expect(await runAndWait()).toBe(first);
    greedyText = first;
  });

  it('compares the base model and an adapter side by side', async () => {
    const settings = page.getByTestId('demo-settings');
    await settings.getByLabel('Right column').selectOption({ label: `Adapter ${adapterId}` });
    await page.getByTestId('demo-run').click();
    const outputs = page.getByTestId('demo-output');
    await expect.poll(() => outputs.count()).toBe(2);
    await expect.poll(() => outputs.nth(1).getAttribute('data-status'), { timeout: 180_000 }).toBe('done');
    expect(await outputs.nth(0).getAttribute('data-status')).toBe('done');
    expect(await outputs.nth(0).getByRole('heading').innerText()).toBe(`Base: ${TINY_REPO} (int8)`);
    expect(await outputs.nth(1).getByRole('heading').innerText()).toBe(`Adapter: ${adapterId}`);
    // The left column is the base model, greedy: what it said before.
    expect(await outputs.nth(0).getByTestId('demo-text').innerText()).toBe(greedyText);
    expect(await outputs.nth(1).innerText()).toMatch(/\d new tokens after \d+ prompt tokens/);
    await screenshot(page, 'demo-side-by-side');
    await settings.getByLabel('Right column').selectOption({ label: 'None' });
  });

  it('samples with a seed (the same seed, the same text) and edits the prompt freely', async () => {
    const settings = page.getByTestId('demo-settings');
    await settings.getByLabel('Sample').check();
    await settings.getByLabel('Temperature').fill('1.5');
    await settings.getByLabel('Seed').fill('7');
    const a = await runAndWait();
    expect(await runAndWait()).toBe(a);
    await prompt().fill('Instruct: say something\nOutput:');
    await settings.getByLabel(/Wrap as the paper/).uncheck();
    await expect.poll(() => page.getByTestId('demo-token-count').innerText()).toMatch(/^\d+ tokens as sent\./);
    expect(await page.locator('label[for="demo-prompt"]').innerText()).toContain('Edited: no expected answer is checked.');
    await runAndWait();
    expect(await page.getByTestId('demo-verdict').count()).toBe(0);
    await settings.getByLabel('Greedy, as the evaluations').check();
  });

  it('cancels a long generation, keeping what came', async () => {
    await page.getByTestId('demo-settings').getByLabel('Max new tokens').fill('300');
    await page.getByTestId('demo-run').click();
    await expect.poll(() => page.getByTestId('demo-text').first().innerText(), { timeout: 120_000 }).toMatch(/\S{2,}/);
    await page.getByRole('button', { name: 'Cancel' }).click();
    await expect.poll(() => output().getAttribute('data-status'), { timeout: 60_000 }).toBe('cancelled');
    const stats = await output().innerText();
    const n = Number(stats.match(/(\d+) new tokens after/)![1]);
    expect(n).toBeGreaterThan(0);
    expect(n).toBeLessThan(300);
    expect(stats).toContain('· cancelled');
    await screenshot(page, 'demo-cancelled');
  });
});
