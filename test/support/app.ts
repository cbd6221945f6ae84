import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import type { EngineApi } from '../../src/worker/api';
import { launchBrowser, openPage } from './browser';
import { MODELS } from './fixtures';
import { HubServer, TEST_REVISION, TINY_MODEL_ID, TINY_REPO, type HubServerOptions } from './hub-server';
import { serveStatic, type StaticServer } from './static-server';

/**
 * What the page tests (and the README's screenshots) set up alike: the built app served from dist/ (or
 * PHI2_E2E_DIST), a stand-in Hub serving test repositories, and Chromium; and tiny-phi (Phi-2's vocabulary
 * and tokenizer at hidden size 64) downloaded from that Hub and loaded onto the GPU through the page's own
 * engine API, as the Model page's buttons would.
 */

export const DIST = process.env.PHI2_E2E_DIST ?? join(import.meta.dirname, '../../dist');
export const TINY = MODELS.tiny;
export const TINY_ADAPTER = join(TINY, 'golden/adapter');
export { TINY_MODEL_ID, TINY_REPO };

export interface TestApp {
  app: StaticServer;
  hub: HubServer;
  browser: Browser;
}

export interface TestAppWithPage extends TestApp {
  page: Page;
}

/** The app, a Hub with `hub`'s repositories (tiny-phi by default) and a browser; what started is closed again if one fails. */
export async function startApp(hub: HubServerOptions = { repos: { [TINY_REPO]: TINY } }): Promise<TestApp> {
  const started: Partial<TestApp> = {};
  try {
    started.app = await serveStatic(DIST);
    started.hub = await HubServer.start(hub);
    started.browser = await launchBrowser();
    return started as TestApp;
  } catch (err) {
    await stopApp(started);
    throw err;
  }
}

/** Closes what startApp started (any part, or all, may be missing when a set-up failed). */
export async function stopApp({ app, hub, browser }: Partial<TestApp> = {}): Promise<void> {
  await browser?.close();
  await hub?.close();
  await app?.close();
}

/** Downloads tiny-phi from `hub` in int8 and loads it onto the GPU; throws naming the step that failed. */
export async function loadTinyPhi(page: Page, hub: HubServer): Promise<void> {
  const outcome = await page.evaluate(
    async ({ baseUrl, revision, repo, id }) => {
      const api = (globalThis as unknown as { phi2: EngineApi }).phi2;
      const got = await api.downloadFromHub({ repo, revision, baseUrl }, 'int8');
      if (got.status !== 'complete') return `download ${got.status}`;
      return (await api.loadModel(id)).status;
    },
    { baseUrl: hub.url, revision: TEST_REVISION, repo: TINY_REPO, id: TINY_MODEL_ID },
  );
  if (outcome !== 'loaded') throw new Error(`tiny-phi did not load: ${outcome}`);
}

/**
 * startApp, a page at `hash` and tiny-phi loaded in it: where a page test that needs the model begins.
 * What started is closed again if a step fails.
 */
export async function startAppWithTinyPhi(hash = '#model', hub?: HubServerOptions): Promise<TestAppWithPage> {
  const started = await startApp(hub);
  try {
    const page = await openPage(started.browser, `${started.app.url}/${hash}`);
    await loadTinyPhi(page, started.hub);
    return { ...started, page };
  } catch (err) {
    await stopApp(started);
    throw err;
  }
}
