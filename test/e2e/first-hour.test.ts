import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAppWithTinyPhi, stopApp, type TestAppWithPage } from '../support/app';
import { screenshot } from '../support/browser';

// What a new user meets in the first hour, on the Train, Evaluate and Demo pages of the built app with tiny-phi
// (Phi-2's vocabulary and tokenizer at hidden size 64) on the GPU: long tasks say what they do from their first
// second (and stop saying it once done), speeds read sensibly at any size, the preset card says when it was changed, the symbol-tuning preset
// finds symbol data, and the Evaluate page shows the paper only where it has numbers, its plan following the
// models ticked at once.

let running: TestAppWithPage;
let page: Page;
beforeAll(async () => ({ page } = running = await startAppWithTinyPhi()));
afterAll(() => stopApp(running));

async function show(section: string): Promise<void> {
  await page.evaluate((s) => (location.hash = s), section);
}

/**
 * Records every text an element shows, from now on, with the time it appeared (a MutationObserver in the page):
 * what the user saw second by second, whatever the test happened to poll.
 */
async function recordTexts(testid: string): Promise<() => Promise<Array<{ at: number; text: string }>>> {
  await page.evaluate((id) => {
    const w = globalThis as unknown as { __seen?: Record<string, Array<{ at: number; text: string }>>; __observers?: MutationObserver[] };
    w.__seen ??= {};
    const seen: Array<{ at: number; text: string }> = (w.__seen[id] = []);
    const look = () => {
      const el = document.querySelector(`[data-testid="${id}"]`) as HTMLElement | null;
      const text = el?.innerText.trim() ?? '';
      if (text && seen.at(-1)?.text !== text) seen.push({ at: performance.now(), text });
    };
    const observer = new MutationObserver(look);
    observer.observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
    (w.__observers ??= []).push(observer);
    look();
  }, testid);
  const started = await page.evaluate(() => performance.now());
  return async () =>
    page.evaluate(
      ({ id, started }) => {
        const w = globalThis as unknown as { __seen: Record<string, Array<{ at: number; text: string }>>; __observers: MutationObserver[] };
        for (const o of w.__observers.splice(0)) o.disconnect();
        return w.__seen[id].map((s) => ({ at: s.at - started, text: s.text }));
      },
      { id: testid, started },
    );
}

/** The texts seen, each first time it appeared with its counter left out, for the log. */
function shownOnce(seen: Array<{ at: number; text: string }>): string {
  const lines: string[] = [];
  let last = '';
  for (const s of seen) {
    const text = s.text.replace(/\n/g, ' | ').replace(/ · (\d+ min )?\d+ s$/, '');
    if (text !== last) lines.push(`  ${(s.at / 1000).toFixed(1)} s  ${text}`);
    last = text;
  }
  return lines.join('\n');
}

describe('the Train page in the first hour', () => {
  it('marks the preset changed, with what differs, and shows small parameter counts whole', async () => {
    await show('train');
    await expect.poll(() => page.getByTestId('memory-total').count(), { timeout: 60_000 }).toBe(1);
    const card = page.getByTestId('preset-instruction');
    expect(await card.getAttribute('data-changed')).toBe('false');
    await page.getByLabel(/^Rank r/).fill('16');
    await page.getByLabel(/^Alpha/).fill('32');
    await expect.poll(() => card.getAttribute('data-changed')).toBe('true');
    expect(await card.getByTestId('preset-changes').innerText()).toBe('Changed here: r 16 instead of 64; alpha 32 instead of 64.');
    expect(await card.innerText()).toMatch(/^Paper: instruction tuning changed/);
    await screenshot(page, 'train-preset-changed');
    await page.getByTestId('preset-reset').click();
    await expect.poll(() => card.getAttribute('data-changed')).toBe('false');
    expect(await page.getByLabel(/^Rank r/).inputValue()).toBe('64');

    // tiny-phi's LoRA at r 64 has a few hundred thousand parameters: counted whole, not "0.1M".
    const memory = await page.getByTestId('train-memory').innerText();
    expect(memory).toMatch(/LoRA weights and gradients \(\d{1,3}(,\d{3})* parameters, f32\)/);
    expect(memory).not.toMatch(/\d\.\dM parameters/);
  });

  it('says what a run does from its first second, and its tokens/s reads sensibly', async () => {
    await page.getByTestId('adapter-name').fill('first-hour');
    await page.getByTestId('length-unit').selectOption('steps');
    await page.getByTestId('train-steps').fill('3');
    await page.getByTestId('grad-accumulation').fill('1');
    await page.getByLabel('Maximum length (tokens)').fill('16');
    const stop = await recordTexts('train-status');
    const speeds = await recordTexts('train-speed');
    await page.getByTestId('start-training').click();
    await expect.poll(() => page.getByTestId('train-run').getAttribute('data-outcome'), { timeout: 280_000 }).toBe('finished');
    const seen = await stop();
    const speedSeen = await speeds();
    console.log(`train status as shown (each text once, without its counter):\n${shownOnce(seen)}`);
    // Something said from the click on, with a counter; the first step says it compiles the kernels.
    expect(seen.length).toBeGreaterThan(0);
    expect(seen[0].text).toMatch(/^(Starting|Training)/);
    expect(seen.every((s) => /· (\d+ min )?\d+ s$/.test(s.text) || /^Training$/.test(s.text))).toBe(true);
    const compiling = seen.findIndex((s) => /Running step 1 of 3: it compiles the GPU kernels training needs first \(later steps reuse them\) · (\d+ min )?\d+ s$/.test(s.text));
    expect(compiling).toBeGreaterThan(-1);
    // Once step 1 has reported, the line says no more than that it trains (the figures below say the rest).
    const training = seen.findIndex((s) => s.text === 'Training');
    expect(training).toBeGreaterThan(compiling);
    expect(seen.slice(training).filter((s) => /compiles/.test(s.text))).toEqual([]);
    // Every speed shown is a number with its digits, never rounded away to 0.
    const numbers = speedSeen.map((s) => s.text).filter((t) => t !== '–');
    expect(numbers.length).toBeGreaterThan(0);
    for (const t of numbers) {
      expect(t).toMatch(/^\d[\d,]*(\.\d+)?$/);
      expect(Number(t.replace(/,/g, ''))).toBeGreaterThan(0);
    }
    expect(await page.getByTestId('train-elapsed').innerText()).toMatch(/^\d+ s$|min/);
  });

  it('switches the symbol-tuning preset to symbol data, and warns when there is none', async () => {
    await page.getByTestId('preset-symbol').click();
    expect(await page.getByTestId('preset-data-warning').innerText()).toMatch(/trains on symbol-tuning prompts, but the data is the built-in demo set/);
    await page.getByTestId('preset-instruction').click();
    expect(await page.getByTestId('preset-data-warning').count()).toBe(0);

    // A symbol-tuning dataset, prepared and saved on the Data page.
    await show('data');
    await page.getByTestId('mode-symbol').check();
    await page.getByTestId('pool-source-bundled').check();
    await expect.poll(() => page.getByTestId('pool-sst2').isVisible(), { timeout: 30_000 }).toBe(true);
    await page.getByTestId('symbol-count').fill('8');
    await page.getByRole('button', { name: 'Generate symbol-tuning prompts' }).click();
    await expect.poll(() => page.getByTestId('prepared-count').count(), { timeout: 60_000 }).toBe(1);
    await page.getByTestId('save-name').fill('symbols for the preset');
    await page.getByRole('button', { name: 'Save dataset' }).click();
    await expect.poll(() => page.locator('[data-testid="saved-row"][data-name="symbols for the preset"]').count(), { timeout: 30_000 }).toBe(1);

    await show('train');
    await expect.poll(async () => (await page.getByTestId('train-dataset').innerText()).includes('symbols for the preset'), { timeout: 30_000 }).toBe(true);
    await page.getByTestId('preset-symbol').click();
    expect(await page.getByTestId('preset-data-warning').count()).toBe(0);
    expect(await page.getByTestId('preset-note').innerText()).toBe('The data is now "symbols for the preset" (symbol-tuning prompts), which the symbol-tuning preset trains on.');
    expect(await page.getByTestId('train-dataset').evaluate((s) => (s as HTMLSelectElement).selectedOptions[0].text)).toMatch(/^symbols for the preset \(symbol tuning/);
    await screenshot(page, 'train-symbol-preset');
  });
});

describe('the Evaluate page in the first hour', () => {
  it('follows the models ticked at once, says what a run does from its first second, and shows the paper only where it has numbers', async () => {
    await show('evaluate');
    const run = page.getByTestId('eval-run');
    await run.getByLabel(/Choose suites/).check();
    for (const name of ['TweetEval offensive (TEO)', 'Subjectivity, CheckThat! 2023 English (SUBJ)', 'ClimateBERT climate detection (Climate)']) await run.getByLabel(name).uncheck();
    await run.getByLabel('TweetEval hate (TEH)').check();
    for (const f of ['Instruction + label', 'Instruction + symbol', 'No instruction + symbol', 'Flipped labels (flipped-label suite)']) await run.getByLabel(f, { exact: true }).uncheck();
    // The appendix's Input/Output wording: the paper reports no numbers for it.
    await run.getByLabel(/No instruction \+ symbol \(Input\/Output\) \(as the appendix prints it\)/).check();
    await run.getByLabel('Items per dataset and format').fill('1');
    const settings = run.locator('details.settings');
    if (!(await settings.evaluate((d) => (d as HTMLDetailsElement).open))) await run.getByText(/^Generation and scoring/).click();
    await run.getByLabel('Max new tokens (the paper: 50)').fill('3');

    const models = page.getByTestId('eval-models');
    await expect.poll(() => models.getByLabel('With adapter first-hour').count(), { timeout: 30_000 }).toBe(1);
    const line = page.getByTestId('eval-plan-line');
    await expect.poll(() => line.innerText().catch(() => ''), { timeout: 60_000 }).toBe('1 item (1 in-context classification)');
    // Ticked: the plan says so at once (no waiting for the worker to plan again).
    await models.getByLabel('With adapter first-hour').check();
    expect(await line.innerText()).toBe('1 item (1 in-context classification) × 2 models');
    await models.getByLabel('With adapter first-hour').uncheck();
    expect(await line.innerText()).toBe('1 item (1 in-context classification)');

    const stop = await recordTexts('eval-progress');
    await page.getByTestId('eval-start').click();
    await expect.poll(() => page.getByTestId('eval-outcome').innerText().catch(() => ''), { timeout: 240_000 }).toMatch(/Done: 1 run saved/);
    const seen = await stop();
    console.log(`evaluation progress as shown (each text once, without its counter):\n${shownOnce(seen)}`);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen[0].text).toMatch(/^Preparing the prompts/);
    expect(seen.some((s) => /generating the first batch of 1 item.*compiles the GPU kernels generation needs first.* · \d+ s$/s.test(s.text))).toBe(true);
    for (const s of seen) expect(s.text).not.toMatch(/(^|[^\d.])0(\.0)? tokens\/s/);
    // Once measured, the speeds stay on screen while the run is saved.
    const measured = seen.findIndex((s) => /Decode \d[\d,.]* tokens\/s/.test(s.text));
    expect(measured).toBeGreaterThan(-1);
    expect(seen.slice(measured).filter((s) => /Decode –|prefill –/.test(s.text))).toEqual([]);

    const table = page.getByTestId('compare-in_context/no_instruction_symbol_io');
    await table.waitFor({ timeout: 30_000 });
    expect(await table.locator('thead').innerText()).not.toMatch(/paper/);
    expect(await table.locator('figure').getAttribute('data-series')).toBe('Base');
    expect(await page.getByTestId('eval-no-paper').innerText()).toMatch(/The paper reports no numbers for these datasets and formats/);
    expect(await page.getByText("Also show the paper's Mistral-7B-Instruct and GPT-3.5").count()).toBe(0);
    await screenshot(page, 'evaluate-no-paper-numbers');
  });
});

describe('the Demo page in the first hour', () => {
  it('says what it does before the first token, with a counter, and then the speed with its digits', async () => {
    await show('demo');
    await expect.poll(() => page.getByTestId('demo-prompt').inputValue(), { timeout: 60_000 }).toMatch(/^Question: /);
    await expect.poll(() => page.getByTestId('demo-token-count').count(), { timeout: 30_000 }).toBe(1);
    const tokens = Number((await page.getByTestId('demo-token-count').innerText()).match(/^(\d+) tokens/)![1]);
    await page.getByTestId('demo-settings').getByLabel('Max new tokens').fill('4');
    const waiting = await recordTexts('demo-first-token');
    const stats = await recordTexts('demo-output');
    await page.getByTestId('demo-run').click();
    await expect.poll(() => page.getByTestId('demo-output').first().getAttribute('data-status'), { timeout: 180_000 }).toBe('done');
    const seen = await waiting();
    const after = await stats();
    console.log(`demo before its first token (each text once, without its counter):\n${shownOnce(seen)}`);
    expect(seen.length).toBeGreaterThan(0);
    const said = `Reading the prompt (${tokens} tokens) before the first token; the first generation after loading a model also compiles the GPU kernels`;
    expect(seen[0].text.startsWith(`${said} · `)).toBe(true);
    expect(seen.every((s) => s.text.startsWith(said) && /· (\d+ min )?\d+ s$/.test(s.text))).toBe(true);
    expect(await page.getByTestId('demo-first-token').count()).toBe(0);
    const last = after.at(-1)!.text;
    expect(last).toMatch(/first token after/);
    for (const s of after) expect(s.text).not.toMatch(/(^|[^\d.])0(\.0)? tokens\/s/);
  });
});
