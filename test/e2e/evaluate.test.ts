import Papa from 'papaparse';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RESULT_CSV_COLUMNS } from '../../src/engine/eval/results';
import type { EngineApi } from '../../src/worker/api';
import { openPage, screenshot } from '../support/browser';
import { HubServer, TEST_REVISION } from '../support/hub-server';
import { type StaticServer } from '../support/static-server';
import { TINY, TINY_ADAPTER, TINY_MODEL_ID, TINY_REPO, loadTinyPhi, startApp, stopApp } from '../support/app';

// The built app (npm run build first; PHI2_E2E_DIST may point at another build) in Chromium on SwiftShader,
// with tiny-phi (Phi-2's vocabulary and tokenizer at hidden size 64, random weights) downloaded from a
// stand-in for the Hub and loaded through the Model area's worker API. Its answers are gibberish: these
// tests check that the page runs, shows, keeps and exports evaluations, not what they score.
/** The paper's first adapter, served by the stand-in Hub: tiny-phi's PEFT golden adapter (r 4) in its place. */
const FLAN_REPO = 'ChunB1/phi-2_OpenOrca_cot_only';

let app: StaticServer;
let hub: HubServer;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  ({ app, hub, browser } = await startApp({ repos: { [TINY_REPO]: TINY, [FLAN_REPO]: TINY_ADAPTER } }));
  page = await openPage(browser, `${app.url}/#evaluate`);
  // The Hub server the Model page would use (its "Advanced" settings): presets come from it too.
  await page.evaluate((settings) => localStorage.setItem('phi2.model.hubSettings', JSON.stringify(settings)), { repo: TINY_REPO, revision: TEST_REVISION, baseUrl: hub.url });
  await page.reload();
  await loadTinyPhi(page, hub);
});

afterAll(async () => {
  await stopApp({ browser, hub, app });
});

/** A small custom suite: TEH only, one item per format, a few tokens each. */
async function chooseSmallSuite(formats: string[], itemsPerFormat: number): Promise<void> {
  const run = page.getByTestId('eval-run');
  await run.getByLabel(/Choose suites/).check();
  // Label texts are matched as substrings (datasets) or whole (formats: "Instruction + symbol" is inside "No instruction + symbol").
  for (const name of ['TweetEval offensive (TEO)', 'Subjectivity, CheckThat! 2023 English (SUBJ)', 'ClimateBERT climate detection (Climate)']) {
    await run.getByLabel(name).uncheck();
  }
  await run.getByLabel('TweetEval hate (TEH)').check();
  for (const f of ['Instruction + label', 'Instruction + symbol', 'No instruction + symbol', 'Flipped labels (flipped-label suite)']) {
    const box = run.getByLabel(f, { exact: true });
    if (formats.includes(f)) await box.check();
    else await box.uncheck();
  }
  await run.getByLabel('Items per dataset and format').fill(String(itemsPerFormat));
  const settings = run.locator('details.settings');
  if (!(await settings.evaluate((d) => (d as HTMLDetailsElement).open))) await run.getByText(/^Generation and scoring/).click();
  await run.getByLabel('Max new tokens (the paper: 50)').fill('4');
  await run.getByLabel(/Also record each candidate label's log-likelihood/).check();
}

describe('the Evaluate page', () => {
  it('shows the loaded model and what the paper replication costs', async () => {
    await page.getByRole('button', { name: 'Check what is loaded' }).click();
    const models = page.getByTestId('eval-models');
    await expect.poll(() => models.innerText(), { timeout: 30_000 }).toContain(`Base model: ${TINY_REPO} (int8)`);
    const plan = page.getByTestId('eval-plan');
    // The paper's 730 prompts, tokenised by the model's tokenizer for the estimate.
    await expect.poll(() => plan.innerText(), { timeout: 120_000 }).toMatch(/241,780 prompt tokens, at most 36,500 new tokens\. Time at most: .* on an RTX 4090-class GPU/);
    expect(await plan.innerText()).toMatch(/^730 items \(300 in-context classification, 100 flipped labels, 330 big-bench\)/);
    const prepared = (await plan.innerText()).match(/Prompts tokenised and checked in ([\d.]+ m?s)/);
    expect(prepared).not.toBeNull();
    console.log(`the paper's 730 prompts tokenised and checked in the worker in ${prepared![1]}`);
    // Always the paper's generation settings, whatever the custom suites' say.
    expect(await page.getByTestId('eval-paper-settings').innerText()).toMatch(/greedy, the full 50 new tokens/);

    // A stratified sample: 2 of each of the 16 classification sets and of each of the 6 BIG-bench tasks.
    const size = page.getByTestId('eval-paper-size');
    await size.getByLabel(/A stratified sample/).check();
    await size.getByLabel(/Prompts per dataset and format/).fill('2');
    await expect.poll(() => plan.innerText(), { timeout: 60_000 }).toMatch(/^44 items \(24 in-context classification, 8 flipped labels, 12 big-bench\)/);
    await size.getByLabel(/All 730/).check();
    await expect.poll(() => plan.innerText(), { timeout: 60_000 }).toMatch(/^730 items/);
  });

  it("loads the paper's FLAN-Phi-2 adapter from the Hub with one click and chooses it", async () => {
    await page.getByRole('button', { name: 'Load FLAN-Phi-2', exact: true }).click();
    const preset = page.getByTestId('adapter-preset').first();
    await expect.poll(() => preset.innerText(), { timeout: 60_000 }).toMatch(/On the GPU as adapter “([^”]+)”, and chosen for the next run\./);
    const id = (await preset.innerText()).match(/adapter “([^”]+)”/)![1];
    const box = page.getByTestId('eval-models').getByLabel(`With adapter ${id}`);
    expect(await box.isChecked()).toBe(true);
    expect(await page.getByTestId('eval-models').getByLabel(/Base model/).isChecked()).toBe(true);
  });

  it('runs a 2-item suite on the base model and the adapter, side by side with the paper, each item openable', async () => {
    await chooseSmallSuite(['Instruction + label', 'Flipped labels (flipped-label suite)'], 1);
    await expect.poll(() => page.getByTestId('eval-plan').innerText(), { timeout: 30_000 }).toMatch(/^2 items \(1 in-context classification, 1 flipped labels\) × 2 models/);
    await page.getByTestId('eval-start').click();
    await expect.poll(() => page.getByTestId('eval-outcome').innerText().catch(() => ''), { timeout: 240_000 }).toMatch(/Done: 2 runs saved/);

    const inContext = page.getByTestId('compare-in_context/instruction_label');
    const header = await inContext.locator('thead').innerText();
    // Same model in both runs: the columns are named by adapter, and say which verdict they count.
    expect(header).toMatch(/Dataset\s+Base\s+answer verdict\s+\S+\s+answer verdict\s+Phi-2 \(paper\)\s+FLAN-Phi-2 \(paper\)\s+FLAN-Phi-2-Symbol \(paper\)/);
    // Each run's 1 item with its delta to the paper's number for the same model (the base model is
    // Phi-2, the preset is FLAN-Phi-2), then the paper's hand-scored numbers on TEH in this format.
    const delta = 'Δ [−+±][\\d.]+';
    expect(await inContext.locator('tbody').innerText()).toMatch(new RegExp(`TEH\\s+\\d+%\\s+[01]/1\\s+${delta}\\s+\\d+%\\s+[01]/1\\s+${delta}\\s+8%\\s+2/25\\s+84%\\s+21/25`));
    expect(await page.getByTestId('compare-flipped/flipped').locator('tbody').innerText()).toMatch(new RegExp(`TEH\\s+\\d+%\\s+[01]/1\\s+${delta}\\s+\\d+%\\s+[01]/1\\s+${delta}\\s+40%\\s+10/25`));
    const note = await page.getByTestId('eval-verdict-note').innerText();
    expect(note).toMatch(/answer verdict.*agrees with the hand score 97\.6% of the time/s);
    expect(note).not.toMatch(/paper's rule/);
    await expect.poll(() => page.locator('[data-testid="eval-compare"] canvas').count()).toBe(2);

    const items = page.getByTestId('eval-item');
    await expect.poll(() => items.count()).toBe(2);
    await screenshot(page, 'evaluate-results');
    await items.first().getByRole('button').click();
    const dialog = page.getByTestId('eval-item-dialog');
    await expect.poll(() => dialog.isVisible()).toBe(true);
    const detail = await dialog.innerText();
    expect(detail).toContain('gen/in_context/teh/instruction_label/0');
    expect(detail).toContain('Log-likelihood of each candidate label after the prompt');
    expect(detail).toMatch(/(^|\n)No Hate( \(target\))?\s+-\d+\.\d{3}/);
    expect(detail).toMatch(/(^|\n)Hate( \(target\))?\s+-\d+\.\d{3}/);
    expect(detail).toContain('Question: Label the following tweet based on whether it contains hate speech.');
    expect(detail).toMatch(/Answer verdict: (right|wrong), read/);
    expect(detail).toMatch(/Strict rule: (right|wrong), compared/);

    // Hand review by keyboard: R marks the item right and moves on; H marks the next one half.
    expect(await dialog.getByTestId('item-review-now').innerText()).toBe('none yet');
    await page.keyboard.press('r');
    await expect.poll(() => dialog.locator('h2').innerText()).toBe('gen/flipped/teh/flipped/0');
    await page.keyboard.press('h');
    await expect.poll(() => dialog.getByTestId('item-review-now').innerText()).toBe('half');
    await page.keyboard.press('ArrowLeft');
    await expect.poll(() => dialog.getByTestId('item-review-now').innerText()).toBe('right');
    await screenshot(page, 'evaluate-item');
    await page.keyboard.press('Escape');
    await expect.poll(() => dialog.isVisible()).toBe(false);
    await expect.poll(() => page.getByTestId('item-review').allInnerTexts()).toEqual(['right', 'half']);
    // The tables: hand review beside the automatic verdicts, with how many were reviewed.
    const verdicts = page.getByTestId('eval-verdicts');
    await expect.poll(() => verdicts.locator('tbody tr').first().innerText()).toMatch(/^Base\s+\d+%.*\s+75%\s+1\.5\/2\s+2 of 2$/);
    await page.getByTestId('eval-verdict-choice').getByLabel('the hand review').check();
    await expect.poll(() => inContext.locator('tbody').innerText()).toMatch(/TEH\s+100%\s+1\/1/);
    expect(await page.getByTestId('eval-verdict-note').innerText()).toMatch(/hand review/);
    await page.getByTestId('eval-verdict-choice').getByLabel('the answer verdict').check();
    // Reviews are stored with the run: they are there after opening it again.
    const stored = await page.evaluate(async () => {
      const api = (globalThis as unknown as { phi2: EngineApi }).phi2;
      const base = (await api.listEvaluations()).find((r) => r.adapter === null)!;
      return { reviewed: base.reviewed, handScore: base.handScore, items: (await api.getEvaluation(base.id)).items.map((i) => i.review) };
    });
    expect(stored).toEqual({ reviewed: 2, handScore: 1.5, items: [1, 0.5] });
  });

  it('exports the compared runs as CSV and JSON', async () => {
    await page.getByRole('button', { name: 'Export compared as CSV' }).click();
    const link = page.getByTestId('eval-export-link');
    await expect.poll(() => link.innerText().catch(() => '')).toMatch(/^Save phi2-eval-.*\.csv$/);
    const csv = await link.evaluate(async (a) => (await fetch((a as HTMLAnchorElement).href)).text());
    const lines = csv.trim().split('\r\n');
    expect(lines[0]).toBe(RESULT_CSV_COLUMNS.join(','));
    expect(lines).toHaveLength(1 + 2 * 2); // two items of each of the two runs
    expect(csv).toContain('gen/in_context/teh/instruction_label/0');
    expect(csv).toContain('gen/flipped/teh/flipped/0');
    // The base run's hand reviews go out with it.
    const rows = Papa.parse<Record<string, string>>(csv, { header: true, skipEmptyLines: true }).data;
    expect(rows.filter((r) => r.adapter === '').map((r) => r.hand_review)).toEqual(['1', '0.5']);
    expect(rows.every((r) => ['true', 'false'].includes(r.answer) && ['true', 'false'].includes(r.strict))).toBe(true);
    await page.getByRole('button', { name: 'Export compared as JSON' }).click();
    await expect.poll(() => link.innerText()).toMatch(/\.json$/);
    const json = JSON.parse(await link.evaluate(async (a) => (await fetch((a as HTMLAnchorElement).href)).text()));
    expect(json.format).toBe('phi2-lora-eval-results');
    expect(json.runs.map((r: { adapter: string | null }) => r.adapter === null)).toEqual([true, false]);
    expect(json.runs[0].items).toHaveLength(2);
    expect(json.runs[0].items.map((i: { review?: number }) => i.review)).toEqual([1, 0.5]);
    expect(json.runs[0].modelId).toBe(TINY_MODEL_ID);
  });

  it('cancels a run, keeping the items that finished', async () => {
    await chooseSmallSuite(['Instruction + label', 'Instruction + symbol', 'No instruction + symbol'], 4);
    await expect.poll(() => page.getByTestId('eval-plan').innerText(), { timeout: 30_000 }).toMatch(/^12 items/);
    await page.getByTestId('eval-start').click();
    const progress = page.getByTestId('eval-progress');
    await expect.poll(() => progress.innerText().catch(() => ''), { timeout: 120_000 }).toMatch(/[1-9]\d* of 12 items/);
    expect(await progress.innerText()).toMatch(/Decode .* tokens\/s · prefill .* tokens\/s/);
    await screenshot(page, 'evaluate-progress');
    await page.getByRole('button', { name: 'Cancel', exact: true }).click();
    await expect.poll(() => page.getByTestId('eval-outcome').innerText().catch(() => ''), { timeout: 120_000 }).toMatch(/^Cancelled\. The items that finished are saved/);
    // Cancelled during the base model's run: its finished items are saved; the adapter's run never started.
    const rows = page.getByTestId('saved-run');
    await expect.poll(() => rows.count()).toBe(3);
    expect(await rows.first().innerText()).toMatch(/of 12\s*cancelled/i);
  });

  it('keeps runs across a reload, and deletes one', async () => {
    await page.reload();
    const rows = page.getByTestId('saved-run');
    await expect.poll(() => rows.count(), { timeout: 30_000 }).toBe(3);
    await rows.first().getByRole('button', { name: /^Delete / }).click();
    await rows.first().getByRole('button', { name: 'Delete it' }).click();
    await expect.poll(() => rows.count()).toBe(2);
    const left = await page.evaluate(() => (globalThis as unknown as { phi2: EngineApi }).phi2.listEvaluations());
    expect(left.map((r) => r.status)).toEqual(['complete', 'complete']);
    await screenshot(page, 'evaluate-saved');
  });
});

describe('an evaluation cut short by a reload', () => {
  /** The newest saved run's items, as the engine keeps them. */
  const newestRun = () =>
    page.evaluate(async () => {
      const api = (globalThis as unknown as { phi2: EngineApi }).phi2;
      const [run] = await api.listEvaluations();
      const stored = await api.getEvaluation(run.id);
      return { id: run.id, groupId: run.groupId, status: run.status, itemCount: run.itemCount, items: stored.items.map(({ ms: _ms, ...item }) => item) };
    });

  it('is offered for resuming, and the resumed run ends with the verdicts of an uninterrupted one', async () => {
    // The page was reloaded before: put tiny-phi (stored already) on the GPU again.
    expect(await page.evaluate((id) => (globalThis as unknown as { phi2: EngineApi }).phi2.loadModel(id).then((r) => r.status), TINY_MODEL_ID)).toBe('loaded');
    await page.getByRole('button', { name: 'Check what is loaded' }).click();
    await expect.poll(() => page.getByTestId('eval-models').innerText(), { timeout: 30_000 }).toContain(`Base model: ${TINY_REPO} (int8)`);
    // The base model alone on 8 items: two generation batches of 4.
    await chooseSmallSuite(['Instruction + label', 'Instruction + symbol', 'No instruction + symbol', 'Flipped labels (flipped-label suite)'], 2);
    const models = page.getByTestId('eval-models');
    for (const box of await models.getByLabel(/^With adapter/).all()) await box.uncheck();
    await expect.poll(() => page.getByTestId('eval-plan').innerText(), { timeout: 30_000 }).toMatch(/^8 items \(6 in-context classification, 2 flipped labels\)(?! ×)/);

    // Uninterrupted, for reference.
    await page.getByTestId('eval-start').click();
    await expect.poll(() => page.getByTestId('eval-outcome').innerText().catch(() => ''), { timeout: 300_000 }).toMatch(/^Done: 1 run saved/);
    const reference = await newestRun();
    expect(reference).toMatchObject({ status: 'complete', itemCount: 8 });

    // The same request again, reloaded once its first batch (items 1-4) is saved.
    await page.getByTestId('eval-start').click();
    await expect
      .poll(
        async () => {
          const runs = await page.evaluate(() => (globalThis as unknown as { phi2: EngineApi }).phi2.listEvaluations());
          return runs.find((r) => r.status === 'running' && r.groupId !== reference.groupId)?.itemCount ?? 0;
        },
        { timeout: 300_000, interval: 200 },
      )
      .toBeGreaterThanOrEqual(4);
    await page.reload();

    // A new worker: nothing on the GPU, and the run gone quiet. It is offered for resuming.
    const offer = page.getByTestId('resumable-evaluation');
    await expect.poll(() => offer.count(), { timeout: 120_000 }).toBe(1);
    expect(await offer.innerText()).toMatch(/4 of 8 items saved[\s\S]*Cut short \(the page was reloaded or closed\)/);
    const interrupted = await newestRun();
    expect(interrupted).toMatchObject({ status: 'running', itemCount: 4 });
    expect(interrupted.items).toEqual(reference.items.slice(0, 4));
    await screenshot(page, 'evaluate-resume');

    // Resuming loads the model again and runs items 5-8 only.
    await offer.getByTestId('resume-evaluation').click();
    await expect.poll(() => page.getByTestId('eval-outcome').innerText().catch(() => ''), { timeout: 300_000 }).toMatch(/^Done: 1 run saved/);
    const resumed = await newestRun();
    expect(resumed.id).toBe(interrupted.id);
    expect(resumed).toMatchObject({ status: 'complete', itemCount: 8 });
    expect(resumed.items.map((i) => [i.id, i.generation, i.verdict, i.strict, i.answer, i.logLikelihoods])).toEqual(
      reference.items.map((i) => [i.id, i.generation, i.verdict, i.strict, i.answer, i.logLikelihoods]),
    );
    await expect.poll(() => offer.count()).toBe(0);
  });
});
