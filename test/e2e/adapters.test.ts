import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { zipAdapter } from '../../src/engine/adapters/files';
import type { EngineApi } from '../../src/worker/api';
import { openPage, screenshot } from '../support/browser';
import { HubServer, TEST_REVISION } from '../support/hub-server';
import { type StaticServer } from '../support/static-server';
import { TINY, TINY_ADAPTER, loadTinyPhi, startApp, stopApp } from '../support/app';

// The Adapters page in the built app (PHI2_E2E_DIST may point at another build), in Chromium on
// SwiftShader, with tiny-phi loaded through the Model page's API. Adapters come from files, a .zip, the
// paper's presets (served by a stand-in Hub under the paper's repository names), a URL and share links.
const FIXTURES = join(import.meta.dirname, '../../../shared/fixtures');
/** A real PEFT adapter for a wider model (hidden 160): the wrong shapes for tiny-phi. */
const WIDE_ADAPTER = join(FIXTURES, 'golden/golden/adapter');

let app: StaticServer;
let hub: HubServer;
let browser: Browser;
let page: Page;
const work = mkdtempSync(join(tmpdir(), 'e2e-adapters-'));
const zipDir = join(work, 'zips');

beforeAll(async () => {
  const files = {
    'adapter_config.json': new Uint8Array(readFileSync(join(TINY_ADAPTER, 'adapter_config.json'))),
    'adapter_model.safetensors': new Uint8Array(readFileSync(join(TINY_ADAPTER, 'adapter_model.safetensors'))),
  };
  mkdirSync(zipDir);
  writeFileSync(join(zipDir, 'tiny-lora.zip'), zipAdapter(files));
  writeFileSync(join(work, 'tiny-lora.zip'), zipAdapter(files));
  copyFileSync(join(TINY_ADAPTER, 'adapter_config.json'), join(work, 'adapter_config.json'));
  copyFileSync(join(TINY_ADAPTER, 'adapter_model.safetensors'), join(work, 'adapter_model.safetensors'));
  ({ app, hub, browser } = await startApp({
    repos: {
      'test/tiny-phi': TINY,
      'ChunB1/phi-2_OpenOrca_cot_only': TINY_ADAPTER,
      'ChunB1/phi-2_OpenOrca_cot_only_symbol': TINY_ADAPTER,
      'someone/wide-adapter': WIDE_ADAPTER,
      'someone/zips': zipDir,
    },
    // The adapter fixtures are small: redirect and throttle them as large files would be.
    redirectAbove: 16 * 1024,
  }));
  page = await openPage(browser, `${app.url}/#model`);
});

afterAll(async () => {
  await stopApp({ browser, hub, app });
  rmSync(work, { recursive: true, force: true });
});

async function showSection(p: Page, section: string): Promise<void> {
  await p.evaluate((s) => (location.hash = s), section);
}

const row = (id: string) => page.locator(`[data-testid="adapter-row"][data-id="${id}"]`);

describe('the Adapters page', () => {
  it('imports PEFT files and a .zip, and refuses an adapter made for another model size, saying why', async () => {
    await loadTinyPhi(page, hub);
    await showSection(page, 'adapters');
    await expect.poll(() => page.getByTestId('adapters-empty').count(), { timeout: 30_000 }).toBe(1);

    await page.getByTestId('adapter-files').setInputFiles([join(work, 'adapter_config.json'), join(work, 'adapter_model.safetensors')]);
    await expect.poll(() => row('uploaded-adapter').count(), { timeout: 30_000 }).toBe(1);
    const text = await row('uploaded-adapter').innerText();
    expect(text).toMatch(/r 4, alpha 8, dropout 0/);
    expect(text).toContain('imported from adapter_config.json, adapter_model.safetensors');

    await page.getByTestId('adapter-files').setInputFiles(join(work, 'tiny-lora.zip'));
    await expect.poll(() => row('tiny-lora').count(), { timeout: 30_000 }).toBe(1);

    await page.getByTestId('adapter-files').setInputFiles([join(WIDE_ADAPTER, 'adapter_config.json'), join(WIDE_ADAPTER, 'adapter_model.safetensors')]);
    const error = page.getByTestId('adapter-import-error');
    await expect.poll(() => error.count(), { timeout: 30_000 }).toBe(1);
    expect(await error.innerText()).toMatch(/has shape \[8,160\] but this model needs \[8,64\].*trained for a model of another size/);
    // Sizes are checked before a file is read: a weights file far larger than its config allows is refused unread.
    const oversized = join(work, 'oversized');
    mkdirSync(oversized);
    writeFileSync(join(oversized, 'adapter_config.json'), JSON.stringify({ r: 1, target_modules: ['q_proj'] }));
    writeFileSync(join(oversized, 'adapter_model.safetensors'), new Uint8Array(2 ** 20));
    await page.getByTestId('adapter-files').setInputFiles([join(oversized, 'adapter_config.json'), join(oversized, 'adapter_model.safetensors')]);
    await expect.poll(() => error.innerText(), { timeout: 30_000 }).toMatch(/adapter_model\.safetensors is 1,048,576 bytes, more than the [\d,]+ its adapter_config\.json allows/);
    await screenshot(page, 'adapters-imported');
  });

  it("downloads the paper's adapter from the (stand-in) Hub with progress, and loads it as the active one", async () => {
    await page.getByText('Advanced: Hub server').click();
    await page.getByTestId('hub-base-url').fill(hub.url);
    hub.setFaults('adapter_model.safetensors', { throttleBytesPerSecond: 20_000 });
    await page.getByTestId('paper-adapter').first().click();
    await expect.poll(() => page.getByTestId('adapter-download').count(), { timeout: 30_000 }).toBe(1);
    await expect.poll(async () => (await page.getByTestId('adapter-download').innerText()).includes('adapter_model.safetensors'), { timeout: 30_000 }).toBe(true);
    await screenshot(page, 'adapters-downloading');
    await expect.poll(() => row('phi-2_openorca_cot_only').getAttribute('data-active'), { timeout: 60_000 }).toBe('true');
    hub.setFaults('adapter_model.safetensors', {});
    // The stand-in Hub is named by its address: "the Hub" is huggingface.co only.
    expect(await row('phi-2_openorca_cot_only').innerText()).toContain(`from ChunB1/phi-2_OpenOrca_cot_only on ${new URL(hub.url).host}`);
    // The Evaluate page's entry point: the stored copy is used, nothing is downloaded again.
    const before = hub.requests.length;
    const id = await page.evaluate(
      async (base) => (await (globalThis as unknown as { phi2: EngineApi }).phi2.loadAdapterFromHub('ChunB1/phi-2_OpenOrca_cot_only', undefined, base)).id,
      hub.url,
    );
    expect(id).toBe('phi-2_openorca_cot_only');
    expect(hub.requests.length).toBe(before);
  });

  it('looks at a URL before downloading it, and tells when an adapter does not fit the model', async () => {
    await page.getByTestId('adapter-source').fill(`${hub.url}/someone/wide-adapter/resolve/main/adapter_config.json`);
    await page.getByTestId('adapter-inspect').click();
    const preview = page.getByTestId('adapter-preview');
    await expect.poll(() => preview.count(), { timeout: 30_000 }).toBe(1);
    expect(await preview.innerText()).toMatch(/It does not fit the loaded model: .*too (small|large)|made for a (larger|smaller) model/);
    expect(await page.getByTestId('adapter-download-button').isDisabled()).toBe(true);

    await page.getByTestId('adapter-source').fill(`ChunB1/phi-2_OpenOrca_cot_only_symbol@${TEST_REVISION}`);
    await page.getByTestId('adapter-inspect').click();
    await expect.poll(async () => (await preview.innerText()).includes('ChunB1/phi-2_OpenOrca_cot_only_symbol'), { timeout: 30_000 }).toBe(true);
    expect(await preview.innerText()).toMatch(/r 4, alpha 8/);
    await page.getByTestId('adapter-download-button').click();
    await expect.poll(() => row('phi-2_openorca_cot_only_symbol').getAttribute('data-active'), { timeout: 60_000 }).toBe('true');
  });

  it('switches the active adapter, merges one into the weights, renames and deletes', async () => {
    await page.getByLabel('test/tiny-phi alone').check();
    await expect.poll(() => row('phi-2_openorca_cot_only_symbol').getAttribute('data-active'), { timeout: 30_000 }).toBe('false');
    expect(await row('phi-2_openorca_cot_only_symbol').getAttribute('data-loaded')).toBe('true');

    await row('tiny-lora').getByTestId('adapter-load').click();
    await expect.poll(() => row('tiny-lora').getAttribute('data-active'), { timeout: 30_000 }).toBe('true');
    await row('tiny-lora').getByText('Merge into the weights…').click();
    await row('tiny-lora').getByTestId('adapter-merge-confirm').click();
    await expect.poll(() => page.getByTestId('merged-note').count(), { timeout: 60_000 }).toBe(1);
    expect(await row('tiny-lora').innerText()).toContain('merged');
    expect(await row('tiny-lora').getAttribute('data-loaded')).toBe('false');
    expect(await row('tiny-lora').getByTestId('adapter-load').count()).toBe(0);
    await screenshot(page, 'adapters-merged');

    await row('uploaded-adapter').getByRole('button', { name: 'Rename' }).click();
    await page.getByLabel('New name for uploaded-adapter').fill('My tiny LoRA');
    await page.getByLabel('New name for uploaded-adapter').press('Enter');
    await expect.poll(async () => (await row('uploaded-adapter').innerText()).includes('My tiny LoRA'), { timeout: 30_000 }).toBe(true);
    await row('uploaded-adapter').getByTestId('adapter-delete').click();
    await row('uploaded-adapter').getByTestId('adapter-delete-confirm').click();
    await expect.poll(() => row('uploaded-adapter').count(), { timeout: 30_000 }).toBe(0);
  });

  it('lists a download cut short (by a reload) with what arrived, and discards it', async () => {
    // What a download cut by a reload leaves in the app database: its record and one chunk of bytes.
    const url = `${hub.url}/someone/big/resolve/main/adapter_model.safetensors`;
    await page.evaluate(async (u) => {
      const db = await new Promise<IDBDatabase>((resolve, reject) => {
        const r = indexedDB.open('phi2-lora');
        r.onsuccess = () => resolve(r.result);
        r.onerror = () => reject(r.error);
      });
      const tx = db.transaction('adapters', 'readwrite');
      const store = tx.objectStore('adapters');
      store.put({ id: `download-bytes/${u}/000000`, data: new ArrayBuffer(1024) });
      store.put({ id: `download/${u}`, url: u, etag: null, size: 4096, received: 1024, checksums: [0], updatedAt: Date.now() });
      await new Promise((resolve, reject) => {
        tx.oncomplete = resolve;
        tx.onerror = () => reject(tx.error);
      });
      db.close();
    }, url);
    await page.reload();
    await showSection(page, 'adapters');
    const partial = page.getByTestId('partial-download');
    await expect.poll(() => partial.count(), { timeout: 30_000 }).toBe(1);
    expect(await partial.innerText()).toMatch(new RegExp(`${url.replace(/[.?/]/g, '\\$&')}[\\s\\S]*1\\.02 kB of 4\\.10 kB`));
    await partial.getByTestId('partial-clear').click();
    await expect.poll(() => partial.count(), { timeout: 30_000 }).toBe(0);
    const left = await page.evaluate(async () => {
      const db = await new Promise<IDBDatabase>((resolve, reject) => {
        const r = indexedDB.open('phi2-lora');
        r.onsuccess = () => resolve(r.result);
        r.onerror = () => reject(r.error);
      });
      const keys = await new Promise<IDBValidKey[]>((resolve) => {
        const r = db.transaction('adapters').objectStore('adapters').getAllKeys();
        r.onsuccess = () => resolve(r.result);
      });
      db.close();
      return keys.map(String).filter((k) => k.startsWith('download'));
    });
    expect(left).toEqual([]);
  });

  it('opens share links to a .zip and to a missing adapter', async () => {
    const zipUrl = `${hub.url}/someone/zips/resolve/main/tiny-lora.zip`;
    const before = hub.requests.length;
    await page.goto(`${app.url}/?adapter=${encodeURIComponent(zipUrl)}`);
    const card = page.getByTestId('share-link');
    // Where the link points is shown first, and nothing is fetched from it until the person asks.
    await expect.poll(() => card.getAttribute('data-status'), { timeout: 30_000 }).toBe('unseen');
    expect(await page.getByTestId('share-host').innerText()).toBe(new URL(hub.url).origin);
    expect(hub.requests.length).toBe(before);
    await page.getByTestId('share-inspect').click();
    await expect.poll(() => card.getAttribute('data-status'), { timeout: 60_000 }).toBe('ready');
    expect(await card.innerText()).toContain('someone/zips: tiny-lora.zip');
    await page.getByTestId('share-confirm').click();
    await expect.poll(() => card.getAttribute('data-status'), { timeout: 60_000 }).toBe('done');
    // The same adapter came in from a .zip file above: this copy gets a name of its own.
    expect(await page.getByTestId('share-done').innerText()).toContain('"tiny-lora (2)" is stored: load it below once a model is on the GPU');
    await screenshot(page, 'adapters-share-zip');

    await page.goto(`${app.url}/?adapter=${encodeURIComponent(`${hub.url}/someone/not-there/resolve/main/`)}`);
    await page.getByTestId('share-inspect').click();
    await expect.poll(() => card.getAttribute('data-status'), { timeout: 60_000 }).toBe('failed');
    expect(await card.innerText()).toMatch(/adapter_config.json was not found at http:\/\/127.0.0.1:\d+\/someone\/not-there\/resolve\/main\/adapter_config.json \(HTTP 404\)/);
    await page.getByRole('button', { name: 'Dismiss' }).click();
    expect(await card.count()).toBe(0);
    expect(page.url()).not.toContain('adapter=');
  });
});
