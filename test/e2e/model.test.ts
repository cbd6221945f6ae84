import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EngineApi } from '../../src/worker/api';
import type { LoadedModelInfo, StoredModelInfo } from '../../src/worker/model-api';
import { openPage, screenshot } from '../support/browser';
import { HubServer, TEST_REVISION } from '../support/hub-server';
import { type StaticServer } from '../support/static-server';
import { TINY, TINY_REPO, startApp } from '../support/app';

// The built app (npm run build first; PHI2_E2E_DIST may point at another build), in Chromium on
// SwiftShader, against a stand-in for the Hub serving the tiny-phi checkpoint (Phi-2's vocabulary and
// tokenizer at hidden size 64).
/** The same checkpoint under a second name: a fresh download when the first is stored. */
const COPY = 'test/tiny-phi-copy';
const SHARD_1 = 'model-00001-of-00002.safetensors';
const SHARD_2 = 'model-00002-of-00002.safetensors';
const INT8_ID = `${TINY_REPO}@${TEST_REVISION}:int8`;
const F16_ID = `${TINY_REPO}@${TEST_REVISION}:f16`;
const CONFIG = JSON.parse(readFileSync(join(TINY, 'config.json'), 'utf8')) as Record<string, number>;

let app: StaticServer;
let hub: HubServer;
let hubOpen = true;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  ({ app, hub, browser } = await startApp({ repos: { [TINY_REPO]: TINY, [COPY]: TINY } }));
  page = await openPage(browser, `${app.url}/#model`);
});

afterAll(async () => {
  await browser?.close();
  if (hubOpen) await hub?.close();
  await app?.close();
});

function api(p: Page) {
  return {
    listModels: () => p.evaluate(() => (globalThis as unknown as { phi2: EngineApi }).phi2.listModels()) as Promise<StoredModelInfo[]>,
    loadedModel: () => p.evaluate(() => (globalThis as unknown as { phi2: EngineApi }).phi2.loadedModel()) as Promise<LoadedModelInfo | null>,
    storageUsage: () => p.evaluate(() => (globalThis as unknown as { phi2: EngineApi }).phi2.storageUsage()),
  };
}

/** Opens "Advanced" and fills repository, revision and base URL the way a user would. */
async function fillHubForm(settings: { repo: string; revision?: string; baseUrl?: string }, p: Page = page): Promise<void> {
  const card = p.getByTestId('hub-card');
  const details = card.locator('details.advanced');
  if (!(await details.evaluate((d) => (d as HTMLDetailsElement).open))) await card.getByText('Advanced: repository, revision, server').click();
  await card.getByLabel('Repository').fill(settings.repo);
  await card.getByLabel('Revision (commit, branch or tag)').fill(settings.revision ?? TEST_REVISION);
  await card.getByLabel('Base URL').fill(settings.baseUrl ?? hub.url);
}

async function chooseMode(scheme: 'int8' | 'f16', p: Page = page): Promise<void> {
  await p.locator(`input[name="weight-mode"][value="${scheme}"]`).check();
}

/**
 * The app from another origin (so with storage of its own), with the engine worker's storage estimate
 * under the test's control: while `headroom` is a number the browser reports only that many bytes
 * free, as on a nearly full disk. The fault injection of storage, as the Hub server's is of the network.
 */
async function startQuotaProxy(target: string): Promise<{ url: string; headroom: number | null; close(): Promise<void> }> {
  const control = { headroom: null as number | null };
  const stub =
    'StorageManager.prototype.estimate = ((real) => async function () {' +
    ' const e = await real.call(this);' +
    " const h = Number(await (await fetch('/__quota-headroom', { cache: 'no-store' })).text());" +
    ' return Number.isFinite(h) ? { ...e, quota: (e.usage ?? 0) + h } : e;' +
    ' })(StorageManager.prototype.estimate);\n';
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/';
    if (path === '/__quota-headroom') return void res.writeHead(200, { 'cache-control': 'no-store' }).end(String(control.headroom ?? 'none'));
    void fetch(`${target}${path}`).then(
      async (upstream) => {
        let body = Buffer.from(await upstream.arrayBuffer());
        if (/\/assets\/engine\.worker-[^/]+\.js$/.test(path)) body = Buffer.concat([Buffer.from(stub), body]);
        res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/octet-stream', 'cache-control': 'no-store' });
        res.end(body);
      },
      () => res.destroy(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(control, {
    url: `http://localhost:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

const task = (p: Page = page) => p.getByTestId('import-task');
const row = (id: string, p: Page = page) => p.locator(`[data-testid="model-row"][data-model-id="${id}"]`);

async function taskStatus(p: Page = page): Promise<string | null> {
  return (await task(p).count()) ? task(p).getAttribute('data-status') : null;
}

describe('the Model page', () => {
  it('shows sizes for both weight modes and an empty store at first', async () => {
    const get = page.getByTestId('get-weights');
    await expect.poll(() => get.getByTestId('estimate').count(), { timeout: 30_000 }).toBe(1);
    // Phi-2's numbers before anything is downloaded: about 3 GB in int8, 5.6 GB in F16.
    expect(await get.innerText()).toMatch(/int8 \(recommended\)\s*3\.0\d GB stored/);
    expect(await get.innerText()).toMatch(/F16\s*5\.5\d GB stored/);
    await expect.poll(() => page.getByTestId('no-models').count(), { timeout: 30_000 }).toBe(1);
    expect(await page.getByTestId('storage-usage').innerText()).toMatch(/This site stores .* of the .* the browser allows it/);
    expect(await page.getByTestId('memory-estimate').innerText()).toMatch(/LoRA training, r 64, 512-token sequences\s+\d/);

    // Asking for persistent storage gets an answer either way (headless Chromium decides by its own heuristics).
    const persistence = page.getByTestId('persistence');
    if ((await persistence.getAttribute('data-persisted')) === 'false') {
      await persistence.getByRole('button', { name: 'Ask to keep them' }).click();
      await expect
        .poll(async () => (await persistence.getAttribute('data-persisted')) === 'true' || /The browser declined/.test(await persistence.innerText()), { timeout: 30_000 })
        .toBe(true);
    }
  });

  it('takes dropped files and says which are missing', async () => {
    await page.getByTestId('files-card').evaluate((zone, config) => {
      const data = new DataTransfer();
      data.items.add(new File([config], 'config.json', { type: 'application/json' }));
      data.items.add(new File(['{}'], 'tokenizer_config.json', { type: 'application/json' }));
      data.items.add(new File(['# notes'], 'README.md', { type: 'text/markdown' }));
      zone.dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
    }, JSON.stringify(CONFIG));
    const selection = page.getByTestId('files-selection');
    await expect.poll(() => selection.count(), { timeout: 30_000 }).toBe(1);
    const text = await selection.innerText();
    expect(text).toMatch(/^Chosen files: 2 files/);
    expect(text).toContain('1 other file left out');
    expect(text).toContain('These are missing: model.safetensors (or model.safetensors.index.json with its shards).');
    expect(await selection.getByRole('button', { name: 'Import as int8' }).isDisabled()).toBe(true);
    await screenshot(page, 'model-drop-incomplete');
    await selection.getByRole('button', { name: 'Clear' }).click();
    expect(await selection.count()).toBe(0);
  });

  it('explains a wrong repository (404) and a gated one (403), storing nothing', async () => {
    await fillHubForm({ repo: 'test/no-such-model' });
    await page.getByRole('button', { name: 'Download test/no-such-model (int8)' }).click();
    await expect.poll(taskStatus, { timeout: 30_000 }).toBe('failed');
    const problem = page.getByTestId('import-problem');
    expect(await problem.getAttribute('data-code')).toBe('not-found');
    expect(await problem.innerText()).toContain('HTTP 404');
    expect(await problem.innerText()).toContain('test/no-such-model');
    await screenshot(page, 'model-error-404');

    hub.setFaults('config.json', { status: { code: 403, times: 1 } });
    await fillHubForm({ repo: TINY_REPO });
    await page.getByRole('button', { name: 'Download test/tiny-phi (int8)' }).click();
    await expect.poll(() => problem.getAttribute('data-code'), { timeout: 30_000 }).toBe('unauthorized');
    expect(await problem.innerText()).toMatch(/needs a login \(HTTP 403\)/);
    expect(await problem.innerText()).toContain('import them from disk');
    hub.setFaults('config.json', {});
    await page.getByRole('button', { name: 'Dismiss' }).click();

    // The check reads the repository's own config.json and sizes it.
    await page.getByRole('button', { name: 'Check repository' }).click();
    await expect.poll(() => page.getByTestId('hub-inspection').count(), { timeout: 30_000 }).toBe(1);
    expect(await page.getByTestId('hub-inspection').innerText()).toContain('2 layers, hidden 64, 2 heads of 32, vocabulary 51,200');
    expect(await page.getByTestId('estimate').innerText()).toMatch(/^test\/tiny-phi in int8 takes 13\.\d MB/);
    expect(await api(page).listModels()).toEqual([]);
  });

  it('downloads tiny-phi through the form, riding out a dropped connection with a Range request', async () => {
    hub.setFaults(SHARD_1, { throttleBytesPerSecond: 2_000_000 });
    hub.setFaults(SHARD_2, { dropAfter: { bytes: 1_000_000, times: 1 } });
    const before = hub.requests.length;
    await chooseMode('int8');
    await page.getByRole('button', { name: 'Download test/tiny-phi (int8)' }).click();
    // Progress for the file and overall, with rate and time left, while the throttled shard arrives.
    await expect.poll(() => page.getByTestId('file-progress').count(), { timeout: 30_000 }).toBe(1);
    await expect.poll(async () => Number(await page.getByTestId('overall-progress').getAttribute('data-done')), { timeout: 30_000 }).toBeGreaterThan(1_000_000);
    expect(await page.getByTestId('file-progress').innerText()).toMatch(new RegExp(`${SHARD_1}\\s+[\\d.]+ MB of 6\\.66 MB \\(\\d+%\\) · [\\d.]+ MB/s · .* left`));
    await screenshot(page, 'model-download-progress');

    await expect.poll(taskStatus, { timeout: 120_000 }).toBe('complete');
    // The dropped shard was continued from where the connection broke, not fetched again from byte 0.
    const shard2 = hub.requests.slice(before).filter((r) => r.path.endsWith(`/${SHARD_2}`) && r.path.startsWith('/cdn/'));
    expect(shard2.length).toBeGreaterThanOrEqual(2);
    const resumed = shard2.find((r) => r.range !== null);
    expect(resumed?.status).toBe(206);
    // The page asks for `bytes=N-`; Chromium's HTTP cache, holding the part that arrived before the drop,
    // may forward it with an explicit end. Either way the transfer continued from N > 0.
    expect(Number(/^bytes=(\d+)-(\d*)$/.exec(resumed?.range ?? '')?.[1]), `resumed with Range ${resumed?.range}`).toBeGreaterThan(0);
    expect(await page.getByTestId('retry-line').innerText()).toMatch(/^Retried \d+ times? after failures \(the last: .+\)\.$/);

    const stored = row(INT8_ID);
    await expect.poll(() => stored.getAttribute('data-complete'), { timeout: 30_000 }).toBe('true');
    const cells = await stored.innerText();
    expect(cells).toContain('Complete');
    expect(cells).toMatch(/int8\s+13\.\d MB/);
    const [info] = (await api(page).listModels()).filter((m) => m.id === INT8_ID);
    expect(info).toMatchObject({ complete: true, tokenizer: true, scheme: 'int8', name: TINY_REPO, tensorsStored: info.tensorsTotal });
    expect(info.bytesStored).toBe(info.bytesTotal);
    expect(info.source).toEqual({ kind: 'hub', repo: TINY_REPO, revision: TEST_REVISION, baseUrl: hub.url });
    expect(await page.getByTestId('hub-card').innerText()).toContain('This model is stored in int8');
    await screenshot(page, 'model-downloaded');
    hub.setFaults(SHARD_1, {});
    hub.setFaults(SHARD_2, {});
    await task().getByRole('button', { name: 'Dismiss' }).click();
  });

  it('pauses a download and resumes it after a reload where it stopped', async () => {
    hub.setFaults(SHARD_1, { throttleBytesPerSecond: 1_000_000 });
    await chooseMode('f16');
    await page.getByRole('button', { name: 'Download test/tiny-phi (f16)' }).click();
    // Past the first 4 MB record of the embedding, so that something is stored when it pauses.
    await expect
      .poll(async () => Number((await page.getByTestId('overall-progress').count()) ? await page.getByTestId('overall-progress').getAttribute('data-done') : 0), {
        timeout: 60_000,
        interval: 100,
      })
      .toBeGreaterThan(4_600_000);
    await page.getByRole('button', { name: 'Pause' }).click();
    await expect.poll(taskStatus, { timeout: 30_000 }).toBe('paused');
    expect(await task().innerText()).toContain('Everything stored so far is kept');
    await screenshot(page, 'model-paused');
    const [partial] = (await api(page).listModels()).filter((m) => m.id === F16_ID);
    expect(partial.complete).toBe(false);
    expect(partial.bytesStored).toBeGreaterThan(0);

    hub.setFaults(SHARD_1, {});
    await page.reload();
    const stored = row(F16_ID);
    await expect.poll(() => stored.getAttribute('data-complete'), { timeout: 30_000 }).toBe('false');
    expect(await stored.innerText()).toMatch(/Incomplete\s+\d+% · \d+ of \d+ tensors/);
    // The form remembers the server; in F16 mode the Hub card offers to resume too.
    await chooseMode('f16');
    expect(await page.getByTestId('hub-card').getByRole('button', { name: /^Resume download \(\d+% stored\)$/ }).count()).toBe(1);
    await screenshot(page, 'model-resume-offered');

    const before = hub.requests.length;
    await stored.getByRole('button', { name: 'Resume' }).click();
    await expect.poll(taskStatus, { timeout: 120_000 }).toBe('complete');
    expect(await task().innerText()).toMatch(/Resuming test\/tiny-phi: \d+ of \d+ tensors already stored/);
    const shard1 = hub.requests.slice(before).filter((r) => r.path.startsWith('/cdn/') && r.path.endsWith(`/${SHARD_1}`));
    expect(shard1).toHaveLength(1);
    expect(Number(/^bytes=(\d+)-$/.exec(shard1[0].range ?? '')?.[1])).toBeGreaterThan(4_000_000);
    await expect.poll(() => stored.getAttribute('data-complete'), { timeout: 30_000 }).toBe('true');
    await task().getByRole('button', { name: 'Dismiss' }).click();
  });

  it('imports a chosen model folder, leaving out its other files', async () => {
    await chooseMode('int8');
    await page.getByTestId('folder-input').setInputFiles(TINY);
    const selection = page.getByTestId('files-selection');
    await expect.poll(() => selection.count(), { timeout: 30_000 }).toBe(1);
    const text = await selection.innerText();
    expect(text).toMatch(/^tiny-phi: 6 files/);
    // golden/ holds other .safetensors files; generation_config.json is not read.
    expect(text).toMatch(/\d+ other files left out/);
    await page.getByRole('button', { name: 'Import as int8' }).click();
    await expect.poll(taskStatus, { timeout: 120_000 }).toBe('complete');
    const stored = row('files:tiny-phi:int8');
    await expect.poll(() => stored.getAttribute('data-complete'), { timeout: 30_000 }).toBe('true');
    expect(await stored.innerText()).toMatch(/Local files \(6\)/);
  });

  it('refuses a download that does not fit in browser storage, saying how much is needed, and resumes once it fits', async () => {
    const proxy = await startQuotaProxy(app.url);
    proxy.headroom = 2_000_000;
    const small = await openPage(browser, `${proxy.url}/#model`);
    try {
      await fillHubForm({ repo: COPY }, small);
      await small.getByRole('button', { name: 'Check repository' }).click();
      await expect.poll(() => small.getByTestId('hub-inspection').count(), { timeout: 30_000 }).toBe(1);
      // Warned before starting: the repository's own size against what the browser reports free.
      await expect
        .poll(() => small.getByTestId('get-weights').innerText(), { timeout: 30_000 })
        .toMatch(/Not enough browser storage: 13\.4 MB are needed but only 2\.00 MB are free for this site/);

      await small.getByRole('button', { name: `Download ${COPY} (int8)` }).click();
      await expect.poll(() => taskStatus(small), { timeout: 30_000 }).toBe('failed');
      const problem = small.getByTestId('import-problem');
      expect(await problem.getAttribute('data-code')).toBe('quota');
      const text = await problem.innerText();
      expect(text).toContain('Browser storage is full');
      expect(text).toMatch(/13\.4 MB more are needed, but only 2\.00 MB are free for this site\. Everything stored so far is kept/);
      await screenshot(small, 'model-quota');

      // Room again: the model the refused download began resumes, from the task or from its row.
      proxy.headroom = null;
      await task(small).getByRole('button', { name: 'Resume' }).click();
      await expect.poll(() => taskStatus(small), { timeout: 120_000 }).toBe('complete');
      await expect.poll(() => row(`${COPY}@${TEST_REVISION}:int8`, small).getAttribute('data-complete'), { timeout: 30_000 }).toBe('true');
    } finally {
      await small.context().close();
      await proxy.close();
    }
  });

  it('loads a stored model onto the GPU from IndexedDB alone, with the Hub server stopped', async () => {
    await hub.close();
    hubOpen = false;
    await page.reload();
    const stored = row(INT8_ID);
    await expect.poll(() => stored.getAttribute('data-complete'), { timeout: 30_000 }).toBe('true');
    await stored.getByRole('button', { name: 'Load onto GPU' }).click();
    const panel = page.getByTestId('gpu-model');
    await expect.poll(() => panel.getAttribute('data-state'), { timeout: 240_000, interval: 500 }).toBe('loaded');

    const loaded = await api(page).loadedModel();
    const headDim = CONFIG.hidden_size / CONFIG.num_attention_heads;
    expect(loaded).toMatchObject({
      id: INT8_ID,
      name: TINY_REPO,
      weightMode: 'int8',
      dims: {
        vocab: CONFIG.vocab_size,
        hidden: CONFIG.hidden_size,
        intermediate: CONFIG.intermediate_size,
        layers: CONFIG.num_hidden_layers,
        heads: CONFIG.num_attention_heads,
        headDim,
        rotaryDim: Math.floor(headDim * CONFIG.partial_rotary_factor),
        maxPositions: CONFIG.max_position_embeddings,
      },
    });
    // The GPU holds exactly what was stored (int8 words and scales, F16 tables, f32 vectors), give or take alignment.
    const [info] = (await api(page).listModels()).filter((m) => m.id === INT8_ID);
    expect(loaded!.gpuBytes).toBeGreaterThanOrEqual(info.bytesTotal);
    expect(loaded!.gpuBytes).toBeLessThan(info.bytesTotal * 1.01);
    expect(await stored.getAttribute('data-loaded')).toBe('true');
    expect(await page.getByTestId('loaded-model').innerText()).toContain(`${TINY_REPO} (int8) is on the GPU`);
    await screenshot(page, 'model-loaded');
  });

  it('verifies checksums, unloads, and deletes after a confirmation', async () => {
    const int8 = row(INT8_ID);
    await int8.getByRole('button', { name: 'Verify' }).click();
    await expect.poll(() => int8.getByTestId('verify-status').getAttribute('data-status'), { timeout: 60_000 }).toBe('ok');
    expect(await int8.getByTestId('verify-status').innerText()).toMatch(/All checksums match \(13\.\d MB read back\)/);

    await page.getByTestId('gpu-model').getByRole('button', { name: 'Unload' }).click();
    await expect.poll(() => page.getByTestId('gpu-model').getAttribute('data-state'), { timeout: 30_000 }).toBe('none');
    expect(await api(page).loadedModel()).toBeNull();

    const f16 = row(F16_ID);
    await f16.getByRole('button', { name: 'Delete' }).click();
    expect(await f16.innerText()).toMatch(/Delete test\/tiny-phi \(f16, [\d.]+ MB\)\?/);
    await screenshot(page, 'model-delete-confirm');
    await f16.getByRole('button', { name: 'Delete' }).click();
    await expect.poll(() => f16.count(), { timeout: 30_000 }).toBe(0);
    expect((await api(page).listModels()).map((m) => m.id).sort()).toEqual(['files:tiny-phi:int8', INT8_ID].sort());
    await screenshot(page, 'model-page');
  });
});
