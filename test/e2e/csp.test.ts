import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { screenshot } from '../support/browser';
import { HubServer } from '../support/hub-server';
import { type StaticServer } from '../support/static-server';
import { TINY, TINY_ADAPTER, TINY_REPO, loadTinyPhi, startApp, stopApp } from '../support/app';

// The built app under its own Content-Security-Policy, as a host that reads the build's `_headers`
// sends it (the test server does, adding a report-uri): the page and its worker run with the policy,
// every page is used, and nothing is refused. That the policy is enforced at all is checked first,
// with a fetch the policy must refuse, from the page and from the worker.
const ADAPTER_REPO = 'someone/tiny-adapter';
/** Plain http to another host: connect-src refuses it. */
const FORBIDDEN = 'http://csp-check.invalid';

let app: StaticServer;
let hub: HubServer;
let browser: Browser;
let page: Page;
const policies = new Map<string, string | null>();

/** Every violation the page sees, from its first script on. */
const PROBE = `
  window.__csp = [];
  addEventListener('securitypolicyviolation', (e) => window.__csp.push({ directive: e.violatedDirective, blocked: e.blockedURI, source: e.sourceFile }));
`;

beforeAll(async () => {
  ({ app, hub, browser } = await startApp({ repos: { [TINY_REPO]: TINY, [ADAPTER_REPO]: TINY_ADAPTER } }));
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.addInitScript(PROBE);
  page = await context.newPage();
  page.on('response', (r) => policies.set(new URL(r.url()).pathname, r.headers()['content-security-policy'] ?? null));
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') console.log(`[browser ${msg.type()}] ${msg.text()}`);
  });
  await page.goto(`${app.url}/#model`);
});

afterAll(async () => {
  await stopApp({ browser, hub, app });
});

type Violation = { directive: string; blocked: string; source: string };
const pageViolations = (): Promise<Violation[]> => page.evaluate(() => (globalThis as unknown as { __csp: Violation[] }).__csp);

/** Reports the browser posted (page and worker), as blocked URI and directive. */
function reported(): Array<{ blocked: string; directive: string }> {
  return app.cspReports.map((r) => {
    const body = (r as { 'csp-report'?: Record<string, string> })['csp-report'] ?? {};
    return { blocked: body['blocked-uri'] ?? '', directive: body['effective-directive'] ?? body['violated-directive'] ?? '' };
  });
}

const unexpected = (list: Array<{ blocked: string }>) => list.filter((v) => !v.blocked.startsWith(FORBIDDEN));

describe('the Content-Security-Policy', () => {
  it('comes with the page and the worker, and is enforced in both', async () => {
    const worker = page.workers().find((w) => w.url().includes('engine.worker')) ?? (await page.waitForEvent('worker'));
    await expect.poll(() => [...policies.keys()].some((p) => p.includes('engine.worker')), { timeout: 30_000 }).toBe(true);
    for (const [path, policy] of policies) {
      if (path === '/' || path.endsWith('.js')) expect(policy, path).toMatch(/script-src 'self' 'wasm-unsafe-eval'.*connect-src 'self' blob: https: http:\/\/localhost:\*/);
    }
    const meta = await page.evaluate(() => document.querySelector('meta[http-equiv="Content-Security-Policy"]')?.getAttribute('content') ?? '');
    expect(meta).toMatch(/default-src 'self'; script-src 'self' 'wasm-unsafe-eval'/);

    // Refused from the page: the fetch fails and the violation is seen and reported.
    const fromPage = await page.evaluate((url) => fetch(`${url}/page`).then(() => 'fetched', (e: Error) => e.name), FORBIDDEN);
    expect(fromPage).toBe('TypeError');
    expect((await pageViolations()).map((v) => v.directive)).toContain('connect-src');
    // Refused from the worker: its own policy (from its response header) applies there.
    const fromWorker = await worker.evaluate((url) => fetch(`${url}/worker`).then(() => 'fetched', (e: Error) => e.name), FORBIDDEN);
    expect(fromWorker).toBe('TypeError');
    await expect.poll(() => reported().map((r) => r.blocked), { timeout: 30_000 }).toEqual(expect.arrayContaining([`${FORBIDDEN}/page`, `${FORBIDDEN}/worker`]));
  });

  it('lets every page work: model download and load, data, train, evaluate, demo generation, adapters and a share link', async () => {
    // Checksums (hash-wasm's WebAssembly) run on every record of the load.
    await loadTinyPhi(page, hub);

    await page.goto(`${app.url}/#data`);
    await expect.poll(() => page.getByTestId('upload-dropzone').count(), { timeout: 30_000 }).toBe(1);
    await page.goto(`${app.url}/#train`);
    await expect.poll(() => page.getByTestId('memory-total').count(), { timeout: 60_000 }).toBe(1);
    await page.goto(`${app.url}/#evaluate`);
    await expect.poll(() => page.getByTestId('eval-models').count(), { timeout: 30_000 }).toBe(1);
    await page.goto(`${app.url}/#demo`);
    await expect.poll(() => page.getByTestId('demo-prompt').inputValue(), { timeout: 60_000 }).toMatch(/\S/);
    await page.getByTestId('demo-run').click();
    const output = page.getByTestId('demo-output').first();
    await expect.poll(() => output.getAttribute('data-status'), { timeout: 240_000 }).toMatch(/^(done|cancelled|failed)$/);
    expect(await output.getAttribute('data-status')).toBe('done');

    const folder = `${hub.url}/${ADAPTER_REPO}/resolve/main/`;
    await page.goto(`${app.url}/?adapter=${encodeURIComponent(folder)}`);
    const card = page.getByTestId('share-link');
    await expect.poll(() => card.getAttribute('data-status'), { timeout: 30_000 }).toBe('unseen');
    await page.getByTestId('share-inspect').click();
    await expect.poll(() => card.getAttribute('data-status'), { timeout: 60_000 }).toBe('ready');
    await page.getByTestId('share-confirm').click();
    await expect.poll(() => card.getAttribute('data-status'), { timeout: 60_000 }).toBe('done');
    await screenshot(page, 'csp-adapters');

    expect(unexpected(await pageViolations())).toEqual([]);
    // Reports are posted as they happen; the earlier deliberate ones arrived, so any others would have too.
    expect(unexpected(reported())).toEqual([]);
  });
});
