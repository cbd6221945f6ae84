import { readFileSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSymbolTuningData } from '../../src/engine/data/symbol-tuning';
import { tokenizeInstructionData } from '../../src/engine/data/template';
import { PAPER_TEMPLATE, parseTemplate, renderTemplate } from '../../src/shared/template';
import { loadSymbolTuningPool, parseTaskCatalog } from '../../src/engine/data/pools';
import { loadTokenizer } from '../../src/engine/tokenizer/index';
import { PHI2_REVISION } from '../../src/shared/hub';
import type { EngineApi } from '../../src/worker/api';
import { launchBrowser, openPage, screenshot } from '../support/browser';
import { type HfDatasetsServer, startHfDatasetsServer } from '../support/hf-datasets-server';
import { serveStatic, type StaticServer } from '../support/static-server';

// The built app (npm run build first; PHI2_E2E_DIST may point at another build), in Chromium on SwiftShader.
const DIST = process.env.PHI2_E2E_DIST ?? join(import.meta.dirname, '../../dist');
const DATA = join(import.meta.dirname, '../../public/data');
const TOKENIZER = join(import.meta.dirname, '../../../shared/fixtures/phi2-tokenizer');

// OpenOrca-like rows: every third is chain-of-thought (kept by the preset); questions of varied length.
const orca = Array.from({ length: 260 }, (_, i) => ({
  id: `${i % 3 === 0 ? 'cot' : 'niv'}.${i}`,
  system_prompt: '',
  question: `question ${i}${' and more'.repeat(i % 9)}`,
  response: `response ${i}`,
}));

let app: StaticServer;
let hf: HfDatasetsServer;
let crossOrigin: { url: string; close(): Promise<void> };
let browser: Browser;
let page: Page;

/**
 * Another origin, as the Hub is to the app: forwards the dataset-rows API to the fake server adding the CORS
 * headers the real API sends, and serves Phi-2's tokenizer files at their Hub paths.
 */
async function startCrossOrigin(target: string): Promise<{ url: string; close(): Promise<void> }> {
  const cors = { 'access-control-allow-origin': '*', 'access-control-allow-headers': 'authorization, accept', 'access-control-expose-headers': 'retry-after' };
  const server: Server = createServer((req, res) => {
    if (req.method === 'OPTIONS') return void res.writeHead(204, cors).end();
    const path = req.url ?? '/';
    const tokenizerFile = path.match(new RegExp(`^/microsoft/phi-2/resolve/${PHI2_REVISION}/(tokenizer(?:_config)?\\.json)$`))?.[1];
    if (tokenizerFile) return void res.writeHead(200, { ...cors, 'content-type': 'application/json' }).end(readFileSync(join(TOKENIZER, tokenizerFile)));
    const upstream = httpRequest(`${target}${path}`, { headers: { authorization: req.headers.authorization ?? '' } }, (up) => {
      res.writeHead(up.statusCode ?? 502, { ...up.headers, ...cors });
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    upstream.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** public/data read from disk, as fetch would serve it to the app. */
const diskFetch = (async (url: string) => new Response(readFileSync(join(DATA, new URL(url).pathname.replace(/^\/data\//, '')), 'utf8'))) as unknown as typeof fetch;

beforeAll(async () => {
  app = await serveStatic(DIST);
  hf = await startHfDatasetsServer([
    { dataset: 'Open-Orca/OpenOrca', config: 'default', split: 'train', rows: orca },
    { dataset: 'acme/gated', config: 'default', split: 'train', rows: orca.slice(0, 5), token: 'hf_secret' },
  ]);
  crossOrigin = await startCrossOrigin(hf.baseUrl);
  browser = await launchBrowser();
  page = await openPage(browser, `${app.url}/#data`);
});

afterAll(async () => {
  await browser?.close();
  await crossOrigin?.close();
  await hf?.close();
  await app?.close();
});

describe('the Data page', () => {
  it('reads an uploaded CSV in the worker, maps its columns, reports the bad row by line and drops it', async () => {
    await expect.poll(() => page.getByRole('heading', { name: '1. Get data' }).isVisible(), { timeout: 30_000 }).toBe(true);
    expect(await page.getByTestId('saved-empty').innerText()).toContain('None yet');
    // Line 5 has a field too many. Column names the page cannot guess, so the mapping is chosen by hand.
    const csv = ['body,verdict,id', 'a fine film,good,1', 'a dull film,bad,2', 'loved it,good,3', 'broken, row,bad,4', 'hated it,bad,5', 'superb,good,6'].join('\n');
    await page.locator('#data-file').setInputFiles({ name: 'films.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });

    const mapping = page.getByTestId('mapping-panel');
    await expect.poll(() => mapping.isVisible(), { timeout: 30_000 }).toBe(true);
    expect(await mapping.innerText()).toContain(`films.csv: CSV, ${csv.length} B, 6 rows (1 unreadable), 3 columns.`);
    expect(await page.getByTestId('map-input').inputValue()).toBe('body');
    await page.getByLabel(/^Label/).selectOption('verdict');

    const report = page.getByTestId('report-panel');
    await expect.poll(() => report.isVisible(), { timeout: 30_000 }).toBe(true);
    await expect.poll(() => page.getByTestId('report-summary').innerText()).toMatch(/5 good rows and 1 bad row/);
    const bad = page.locator('[data-testid="problems-table"] tbody tr');
    expect(await bad.count()).toBe(1);
    expect(await bad.first().getAttribute('data-line')).toBe('5');
    expect(await bad.first().innerText()).toMatch(/^5\s+Expected 3 fields \(as in the header\), found 4\.\s+broken, row,bad,4$/);
    expect(await page.getByTestId('label-bars').innerText()).toMatch(/^good\s+3 \(60%\)\s+bad\s+2 \(40%\)$/);
    expect(await page.getByTestId('length-histogram').getAttribute('data-unit')).toBe('characters');
    const preview = await page.getByTestId('preview-table').innerText();
    expect(preview).toContain('a fine film');
    expect(preview).not.toContain('broken');
    await screenshot(page, 'data-upload-report');

    await page.getByRole('button', { name: 'Drop the 1 bad row' }).click();
    await expect.poll(() => page.getByTestId('dropped-note').innerText()).toBe('1 bad row dropped; 5 good rows go on.');
    // Nothing uploaded is lost: the bad row is still listed and can be downloaded as it was.
    expect(await bad.count()).toBe(1);
    const download = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Download the bad rows' }).click();
    const file = await download;
    expect(file.suggestedFilename()).toBe('films.bad-rows.csv');
    expect(readFileSync(await file.path(), 'utf8')).toBe('body,verdict,id\nbroken, row,bad,4\n');
  });

  it('generates symbol-tuning prompts from a bundled pool, exactly as the engine does in Node for the same seed', async () => {
    // The labelled upload above chose symbol tuning from itself; the bundled pools are one click away.
    expect(await page.getByTestId('mode-symbol').isChecked()).toBe(true);
    expect(await page.getByTestId('pool-source-own').isChecked()).toBe(true);
    await page.getByTestId('pool-source-bundled').check();
    await expect.poll(() => page.getByTestId('pool-rte').isVisible(), { timeout: 30_000 }).toBe(true);
    await page.getByTestId('pool-rte').uncheck();
    expect(await page.getByTestId('pool-sst2').isChecked()).toBe(true);
    await page.getByTestId('symbol-count').fill('20');
    await page.getByTestId('symbol-per-class').fill('4');
    await page.getByTestId('symbol-seed').fill('4242');
    await page.getByRole('button', { name: 'Generate symbol-tuning prompts' }).click();
    await expect.poll(() => page.getByTestId('prepared-count').isVisible(), { timeout: 60_000 }).toBe(true);
    expect(await page.getByTestId('prepared-count').innerText()).toBe('20 prompts');

    const catalog = parseTaskCatalog(readFileSync(join(DATA, 'tasks.json'), 'utf8'));
    const sst2 = await loadSymbolTuningPool(diskFetch, 'http://app.test/data/', catalog, 'sst2');
    // No tokenizer on the page yet: the prompts stay whole, and the page says they are not fitted.
    const expected = generateSymbolTuningData([sst2], { seed: 4242, count: 20, perClass: 4, kinds: ['integer', 'letters', 'word'], instruction: 'none', shapes: 'varied' }).examples;
    expect(await page.getByTestId('symbol-fit').innerText()).toMatch(/Not fitted to 512 tokens: without a tokenizer/);
    const shown = await page.getByTestId('prepared-example').first().textContent();
    expect(shown).toBe(renderTemplate(parseTemplate(PAPER_TEMPLATE), expected[0]));
    expect(shown!.startsWith(`### Instruct: ${expected[0].question}`)).toBe(true);
    expect(await page.locator('[data-testid="prepared-example"] mark').first().textContent()).toBe(expected[0].response);
    await screenshot(page, 'data-symbol-tuning');
  });

  it('saves the prepared dataset, lists it, renames it and exports it as JSONL for TRL', async () => {
    await page.getByTestId('save-name').fill('SST-2 symbols, seed 4242');
    await page.getByRole('button', { name: 'Save dataset' }).click();
    const row = page.locator('[data-testid="saved-row"][data-name="SST-2 symbols, seed 4242"]');
    await expect.poll(() => row.count(), { timeout: 30_000 }).toBe(1);
    expect(await row.innerText()).toMatch(/symbol tuning\s+20\s+512 tokens/);

    // What the Train page will read: prompt + completion is the text shown above.
    const catalog = parseTaskCatalog(readFileSync(join(DATA, 'tasks.json'), 'utf8'));
    const sst2 = await loadSymbolTuningPool(diskFetch, 'http://app.test/data/', catalog, 'sst2');
    const expected = generateSymbolTuningData([sst2], { seed: 4242, count: 20, perClass: 4 }).examples;
    const stored = await page.evaluate(async () => {
      const phi2 = (globalThis as unknown as { phi2: EngineApi }).phi2;
      const [first] = await phi2.listDatasets();
      return phi2.getDataset(first.id);
    });
    expect(stored.info.name).toBe('SST-2 symbols, seed 4242');
    expect(stored.rows).toHaveLength(20);
    const template = parseTemplate(PAPER_TEMPLATE);
    stored.rows.forEach((r, k) => expect(r.prompt + r.completion).toBe(renderTemplate(template, expected[k])));

    await page.getByRole('button', { name: 'Rename SST-2 symbols, seed 4242' }).click();
    await page.getByLabel('New name for SST-2 symbols, seed 4242').fill('sst2-symbols');
    await page.getByLabel('New name for SST-2 symbols, seed 4242').press('Enter');
    const renamed = page.locator('[data-testid="saved-row"][data-name="sst2-symbols"]');
    await expect.poll(() => renamed.count()).toBe(1);

    await page.getByLabel('Export format for sst2-symbols').selectOption('prompt-completion');
    const download = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Export sst2-symbols as JSONL' }).click();
    const file = await download;
    expect(file.suggestedFilename()).toBe('sst2-symbols.prompt-completion.jsonl');
    const lines = readFileSync(await file.path(), 'utf8').trimEnd().split('\n');
    expect(lines).toHaveLength(20);
    expect(JSON.parse(lines[0])).toEqual({ prompt: stored.rows[0].prompt, completion: stored.rows[0].completion });
    expect(await renamed.getByTestId('export-link').innerText()).toBe('sst2-symbols.prompt-completion.jsonl');

    // Kept across a reload.
    await page.reload();
    await expect.poll(() => page.locator('[data-testid="saved-row"][data-name="sst2-symbols"]').count(), { timeout: 30_000 }).toBe(1);
    await screenshot(page, 'data-saved');
  });

  it('loads a Hub dataset page by page through the dataset-rows API, with progress, cancel and clear errors', async () => {
    await page.getByText('Advanced', { exact: true }).click();
    await page.getByLabel('Dataset viewer API base URL').fill(crossOrigin.url);
    await page.getByLabel('Rows to keep').fill('60');
    hf.requests.length = 0;
    await page.getByRole('button', { name: 'Load rows' }).click();
    const card = page.getByTestId('hub-card');
    await expect.poll(() => card.getAttribute('data-status'), { timeout: 60_000 }).toBe('done');
    // 60 chain-of-thought rows are every third of the first 180: two pages of 100.
    expect(hf.requests.map((r) => [r.path, r.params.offset, r.params.length])).toEqual([
      ['/rows', '0', '100'],
      ['/rows', '100', '100'],
    ]);
    expect(await card.innerText()).toContain('60 rows loaded (2 pages from the Hub, 0 from the cache; the split has 260 rows).');
    expect(await page.getByTestId('mapping-panel').innerText()).toContain('Open-Orca/OpenOrca (config default, split train): 60 rows loaded, 4 columns.');
    expect(await page.getByTestId('map-input').inputValue()).toBe('question');
    expect(await page.getByTestId('map-output').inputValue()).toBe('response');
    await expect.poll(() => page.getByTestId('validation-ok').isVisible(), { timeout: 30_000 }).toBe(true);
    expect(await page.getByTestId('preview-table').innerText()).toMatch(/^Row\s+Input \(question\)\s+Output \(response\)\s+0\s+question 0\s+response 0\s+3\s+question 3/);
    await screenshot(page, 'data-hub');

    // A second load comes from the cache.
    await page.getByRole('button', { name: 'Load rows' }).click();
    await expect.poll(() => card.innerText(), { timeout: 30_000 }).toContain('(0 pages from the Hub, 2 from the cache;');

    // Missing, gated, rate limited.
    await page.getByLabel('Preset').selectOption('');
    await page.getByLabel('Dataset id').fill('acme/missing');
    await page.getByRole('button', { name: 'Load rows' }).click();
    await expect.poll(() => card.getAttribute('data-status'), { timeout: 30_000 }).toBe('error');
    expect(await page.getByTestId('hub-error').innerText()).toContain(
      'acme/missing (config "default", split "train") was not found on the Hub: check the dataset name, config and split',
    );
    await page.getByLabel('Dataset id').fill('acme/gated');
    await page.getByRole('button', { name: 'Load rows' }).click();
    await expect.poll(() => page.getByTestId('hub-error').innerText(), { timeout: 30_000 }).toContain('needs authentication: it is gated or private');
    await screenshot(page, 'data-hub-error');
    await page.getByLabel(/^Access token/).fill('hf_secret');
    await page.getByRole('button', { name: 'Load rows' }).click();
    await expect.poll(() => card.innerText(), { timeout: 30_000 }).toContain('5 rows loaded');
    expect(hf.requests.at(-1)?.authorization).toBe('Bearer hf_secret');
    // Pages 0 and 100 are cached; the third page is asked for, and refused.
    hf.script.push({ status: 429, retryAfter: '3600' });
    await page.getByLabel('Dataset id').fill('Open-Orca/OpenOrca');
    await page.getByLabel('Rows to keep').fill('500');
    await page.getByRole('button', { name: 'Load rows' }).click();
    await expect.poll(() => page.getByTestId('hub-error').innerText(), { timeout: 30_000 }).toContain(
      'rate limited by the Hub (HTTP 429); it asks to wait 3600 s before retrying. Try again later.',
    );
    expect(hf.requests.at(-1)).toMatchObject({ path: '/rows', status: 429, params: { offset: '200' } });

    // Cancel while the loader waits out a 503's Retry-After.
    hf.script.push({ status: 503, retryAfter: '120' });
    await page.getByRole('button', { name: 'Load rows' }).click();
    await expect.poll(() => card.innerText(), { timeout: 30_000 }).toContain('Waiting 120 s to retry');
    await page.getByRole('button', { name: 'Cancel' }).click();
    await expect.poll(() => card.getAttribute('data-status'), { timeout: 30_000 }).toBe('cancelled');
    expect(await card.innerText()).toContain('Loading Open-Orca/OpenOrca was cancelled after 200 rows. The pages read are cached, so loading again resumes quickly.');
  });

  it('counts tokens with Phi-2\u2019s tokenizer once it is downloaded, and says how many rows the maximum length cuts', async () => {
    await page.getByLabel('Preset').selectOption('openorca-cot');
    await page.getByLabel('Rows to keep').fill('60');
    await page.getByRole('button', { name: 'Load rows' }).click();
    const card = page.getByTestId('hub-card');
    await expect.poll(() => card.getAttribute('data-status'), { timeout: 30_000 }).toBe('done');
    const name = await page.evaluate((url) => (globalThis as unknown as { phi2: EngineApi }).phi2.downloadTokenizer(url), crossOrigin.url);
    expect(name).toBe('Phi-2 (tokenizer files downloaded on this page)');

    await page.getByTestId('mode-instruction').check();
    await page.getByTestId('max-tokens').fill('20');
    await page.getByRole('button', { name: 'Prepare instruction rows' }).click();
    await expect.poll(() => page.getByTestId('prepared-count').innerText(), { timeout: 60_000 }).toBe('60 rows');

    const tok = await loadTokenizer({
      'tokenizer.json': readFileSync(join(TOKENIZER, 'tokenizer.json'), 'utf8'),
      'tokenizer_config.json': readFileSync(join(TOKENIZER, 'tokenizer_config.json'), 'utf8'),
    });
    const cot = orca.filter((r) => r.id.startsWith('cot')).slice(0, 60);
    const reference = tokenizeInstructionData(cot, tok, PAPER_TEMPLATE, { maxTokens: 20 });
    expect(reference.truncatedRows).toBeGreaterThan(0);
    expect(reference.truncatedRows).toBeLessThan(60);
    expect(await page.getByTestId('truncation').innerText()).toBe(`${reference.truncatedRows} rows of 60 are longer than 20 tokens and will be cut at the end when training.`);
    expect(await page.locator('[data-testid="prepared"] [data-testid="length-histogram"]').getAttribute('data-unit')).toBe('tokens');
    expect(await page.getByTestId('prepared-example').first().textContent()).toBe('### Instruct: question 0\n ### Output: response 0');
    await screenshot(page, 'data-instruction-tokens');
  });

  it('names every control, shows keyboard focus, and fits 1280 pixels without sideways scrolling', async () => {
    const unnamed = await page.evaluate(() =>
      [...document.querySelectorAll<HTMLElement>('.data-page :is(input, select, textarea, button)')]
        .filter((el) => {
          const labelled = (el as HTMLInputElement).labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
          return !labelled && !(el.tagName === 'BUTTON' && el.textContent?.trim());
        })
        .map((el) => el.outerHTML.slice(0, 120)),
    );
    expect(unnamed).toEqual([]);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(1280);
    // The file input is hidden behind its label: tabbing to it must show the focus ring on the label.
    await page.getByLabel('Preset').focus();
    await page.keyboard.press('Shift+Tab');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('data-file');
    expect(await page.locator('label[for="data-file"]').evaluate((el) => getComputedStyle(el).outlineStyle)).toBe('solid');
  });

  it('takes a file dropped on the drop zone, one at a time', async () => {
    const drop = async (files: Array<[string, string]>) => {
      const dataTransfer = await page.evaluateHandle((list) => {
        const dt = new DataTransfer();
        for (const [name, text] of list) dt.items.add(new File([text], name));
        return dt;
      }, files);
      await page.dispatchEvent('[data-testid="upload-dropzone"]', 'dragenter', { dataTransfer });
      expect(await page.getByTestId('upload-dropzone').getAttribute('class')).toContain('over');
      await page.dispatchEvent('[data-testid="upload-dropzone"]', 'drop', { dataTransfer });
    };
    await drop([
      ['a.csv', 'x,y\n1,2\n'],
      ['b.csv', 'x,y\n1,2\n'],
    ]);
    expect(await page.getByTestId('upload-dropzone').getByRole('alert').innerText()).toBe('2 files were dropped; drop one file at a time.');
    await drop([['chat.jsonl', '{"question":"q1","response":"r1"}\n{"question": oops}\n{"question":"q2","response":"r2"}\n']]);
    await expect.poll(() => page.getByTestId('mapping-panel').innerText(), { timeout: 30_000 }).toContain('chat.jsonl: JSONL');
    await expect.poll(() => page.getByTestId('report-summary').innerText(), { timeout: 30_000 }).toMatch(/2 good rows and 1 bad row/);
    const bad = page.locator('[data-testid="problems-table"] tbody tr');
    expect(await bad.first().getAttribute('data-line')).toBe('2');
    expect(await bad.first().innerText()).toContain('Malformed JSON');
    expect(await page.getByTestId('upload-dropzone').getAttribute('class')).not.toContain('over');
    await page.emulateMedia({ colorScheme: 'dark' });
    await screenshot(page, 'data-dark');
    await page.emulateMedia({ colorScheme: 'light' });
  });
});
