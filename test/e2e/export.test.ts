import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gguf, GGMLQuantizationType } from '@huggingface/gguf';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { unzipSync } from 'fflate';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS } from '../../src/engine/adapters/files';
import { DEMO_ROWS } from '../../src/engine/train/demo-set';
import { openPage, screenshot } from '../support/browser';
import { HubServer } from '../support/hub-server';
import { type StaticServer } from '../support/static-server';
import { TINY_ADAPTER, startApp, stopApp } from '../support/app';

// Work leaving the browser, in the built app in Chromium: Export → GGUF (read back with an independent
// GGUF reader), Publish to the Hub against the stand-in Hub's write API and the share link it makes
// (opened in a fresh page, bringing the published adapter back), and the Train page's cluster folder.
const TOKEN = 'hf_e2eWriteToken0123456789abcdef';

let app: StaticServer;
let hub: HubServer;
let browser: Browser;
let page: Page;
const work = mkdtempSync(join(tmpdir(), 'e2e-export-'));

beforeAll(async () => {
  ({ app, hub, browser } = await startApp({ repos: {}, tokens: { [TOKEN]: { name: 'tester', role: 'write' } } }));
  page = await openPage(browser, `${app.url}/#adapters`);
});

afterAll(async () => {
  await stopApp({ browser, hub, app });
  rmSync(work, { recursive: true, force: true });
});

const row = (p: Page, id: string) => p.locator(`[data-testid="adapter-row"][data-id="${id}"]`);

describe('adapters out of the browser', () => {
  it('exports a stored adapter as a GGUF LoRA adapter for llama.cpp', async () => {
    await page.getByTestId('adapter-files').setInputFiles([join(TINY_ADAPTER, ADAPTER_CONFIG), join(TINY_ADAPTER, ADAPTER_WEIGHTS)]);
    await expect.poll(() => row(page, 'uploaded-adapter').count(), { timeout: 30_000 }).toBe(1);
    const adapter = row(page, 'uploaded-adapter');
    await adapter.getByTestId('export-gguf-open').click();
    await adapter.getByText('F16 (half the size)').click();
    expect(await adapter.getByTestId('gguf-box').innerText()).toContain('llama-cli -m phi-2.gguf --lora uploaded-adapter-F16-LoRA.gguf');
    const [download] = await Promise.all([page.waitForEvent('download'), adapter.getByTestId('export-gguf').click()]);
    expect(download.suggestedFilename()).toBe('uploaded-adapter-F16-LoRA.gguf');
    const path = join(work, download.suggestedFilename());
    await download.saveAs(path);
    const read = await gguf(path, { allowLocalFile: true });
    const metadata = read.metadata as unknown as Record<string, unknown>;
    expect(metadata['general.architecture']).toBe('phi2');
    expect(metadata['general.type']).toBe('adapter');
    expect(metadata['adapter.type']).toBe('lora');
    expect(metadata['adapter.lora.alpha']).toBe(8);
    expect(read.tensorInfos.length).toBe(24);
    expect(read.tensorInfos.every((t) => t.dtype === GGMLQuantizationType.F16)).toBe(true);
    expect(read.tensorInfos.find((t) => t.name === 'blk.1.ffn_down.weight.lora_a')?.shape.map(Number)).toEqual([256, 4]);
    expect(readFileSync(path).length % 32).toBe(0);
    await screenshot(page, 'adapters-gguf');
  });

  it('publishes it to the Hub with a model card, copies the share link, and never keeps the token', async () => {
    await page.getByText('Advanced: Hub server').click();
    await page.getByTestId('hub-base-url').fill(hub.url);
    const adapter = row(page, 'uploaded-adapter');
    await adapter.getByTestId('publish-open').click();
    await adapter.getByTestId('publish-token').fill(TOKEN);
    await adapter.getByTestId('publish-repo').fill('tiny-lora');
    await adapter.getByRole('button', { name: 'Show the model card' }).click();
    await expect.poll(() => adapter.getByTestId('publish-card').count(), { timeout: 30_000 }).toBe(1);
    expect(await adapter.getByTestId('publish-card').innerText()).toContain('- "base_model:adapter:microsoft/phi-2"');
    await adapter.getByTestId('publish-submit').click();
    await expect.poll(() => adapter.getByTestId('publish-done').count(), { timeout: 60_000 }).toBe(1);
    expect(await adapter.getByTestId('publish-done').innerText()).toMatch(/Published tester\/tiny-lora/);
    const link = await adapter.getByTestId('publish-share-link').inputValue();
    expect(link).toBe(`${app.url}/?adapter=${encodeURIComponent(`${hub.url}/tester/tiny-lora/resolve/main/`)}#adapters`);
    await screenshot(page, 'adapters-published');

    const repo = hub.write.repos.get('tester/tiny-lora')!;
    expect([...repo.files.keys()].sort()).toEqual(['README.md', ADAPTER_CONFIG, ADAPTER_WEIGHTS]);
    expect(Buffer.from(repo.files.get(ADAPTER_WEIGHTS)!).equals(readFileSync(join(TINY_ADAPTER, ADAPTER_WEIGHTS)))).toBe(true);
    const readme = new TextDecoder().decode(repo.files.get('README.md'));
    expect(readme).toMatch(/^---\nbase_model: "microsoft\/phi-2"\nlibrary_name: peft\n/);
    for (const tag of ['base_model:adapter:microsoft/phi-2', 'peft', 'lora']) expect(readme).toContain(`- "${tag}"`);
    expect(JSON.parse(new TextDecoder().decode(repo.files.get(ADAPTER_CONFIG))).base_model_name_or_path).toBe('microsoft/phi-2');

    // The token went to the Hub's API only, and nowhere in this origin's storage.
    const stored = await page.evaluate(async () => {
      const texts: string[] = [JSON.stringify({ ...localStorage }), JSON.stringify({ ...sessionStorage }), location.href];
      for (const info of await indexedDB.databases()) {
        const db = await new Promise<IDBDatabase>((resolve, reject) => {
          const r = indexedDB.open(info.name!);
          r.onsuccess = () => resolve(r.result);
          r.onerror = () => reject(r.error);
        });
        for (const name of db.objectStoreNames) {
          const values = await new Promise<unknown[]>((resolve, reject) => {
            const r = db.transaction(name).objectStore(name).getAll();
            r.onsuccess = () => resolve(r.result);
            r.onerror = () => reject(r.error);
          });
          texts.push(JSON.stringify(values));
        }
        db.close();
      }
      return texts.join('\n');
    });
    expect(stored).not.toContain(TOKEN);
    const withToken = hub.requests.filter((r) => JSON.stringify(r).includes(TOKEN));
    expect(withToken.every((r) => r.path.startsWith('/api/') || r.path.includes('.git/info/lfs'))).toBe(true);
  });

  it('opens the share link in a fresh page and brings the published adapter back', async () => {
    const link = await row(page, 'uploaded-adapter').getByTestId('publish-share-link').inputValue();
    const other = await openPage(browser, link);
    try {
      const card = other.getByTestId('share-link');
      // The link's target is shown first; nothing is fetched from it until asked.
      await other.getByTestId('share-inspect').click();
      await expect.poll(() => card.getAttribute('data-status'), { timeout: 60_000 }).toBe('ready');
      expect(await card.innerText()).toContain('tester/tiny-lora');
      await other.getByTestId('share-confirm').click();
      await expect.poll(() => card.getAttribute('data-status'), { timeout: 60_000 }).toBe('done');
      expect(await other.getByTestId('share-done').innerText()).toContain('"tiny-lora" is stored');
    } finally {
      await other.close();
    }
  });

  it('says what is wrong with a token that may not write', async () => {
    const adapter = row(page, 'uploaded-adapter');
    await adapter.getByTestId('publish-token').fill('hf_wrong');
    await adapter.getByTestId('publish-submit').click();
    await expect.poll(() => adapter.getByTestId('publish-error').count(), { timeout: 30_000 }).toBe(1);
    expect(await adapter.getByTestId('publish-error').innerText()).toMatch(/refused the token \(HTTP 401\)/);
  });

  it("writes the Train page's run as a cluster folder with the page's settings and rows", async () => {
    await page.evaluate(() => (location.hash = 'train'));
    await page.getByTestId('train-setup').waitFor();
    await page.getByTestId('length-unit').selectOption('steps');
    await page.getByTestId('train-steps').fill('37');
    await page.getByTestId('batch-size').fill('3');
    await page.getByTestId('grad-accumulation').fill('5');
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('cluster-export').click()]);
    expect(download.suggestedFilename()).toMatch(/-cluster\.zip$/);
    const zipPath = join(work, download.suggestedFilename());
    await download.saveAs(zipPath);
    expect(await page.getByTestId('cluster-result').innerText()).toContain(`${DEMO_ROWS.length} rows`);
    const entries = unzipSync(new Uint8Array(readFileSync(zipPath)));
    const folder = download.suggestedFilename().replace(/\.zip$/, '');
    const text = (p: string) => new TextDecoder().decode(entries[`${folder}/${p}`]);
    const rows = text('train.jsonl').trim().split('\n').map((l) => JSON.parse(l));
    expect(rows).toEqual(DEMO_ROWS.map((r) => ({ prompt: r.prompt, completion: r.completion })));
    const script = join(work, 'train.py');
    writeFileSync(script, text('train.py'));
    execFileSync('python3', ['-m', 'py_compile', script]);
    const settings = JSON.parse(
      execFileSync('python3', ['-c', 'import ast,json,sys\nt=ast.parse(open(sys.argv[1]).read())\nn=next(n for n in t.body if isinstance(n,ast.Assign) and n.targets[0].id=="SETTINGS")\nprint(json.dumps(ast.literal_eval(n.value)))', script], { encoding: 'utf8' }),
    );
    // The page's preset (the paper's LoRA and learning rate) with the fields changed above.
    expect(settings).toMatchObject({ base_model: 'microsoft/phi-2', r: 64, lora_alpha: 64, lora_dropout: 0.05, learning_rate: 2.5e-5, steps: 37, epochs: null, batch_size: 3, gradient_accumulation: 5, max_length: 512, loss_on: 'all' });
    expect(settings.target_modules).toEqual(['q_proj', 'k_proj', 'v_proj', 'dense', 'fc1', 'fc2']);
    for (const n of ['single_gpu', 'multi_gpu', 'deepspeed_zero2', 'fsdp']) expect(entries[`${folder}/accelerate/${n}.yaml`]).toBeDefined();
    await screenshot(page, 'train-cluster');
  });
});
