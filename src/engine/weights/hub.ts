import type { Platform } from '../platform/types';
import type { ModelSource } from '../store/schema';
import { HubError } from './errors';
import { diagnoseRedirects } from './redirects';
import { abortedError } from './retry';
import type { CheckpointSource, OpenedFile } from './source';
import { DEFAULT_HUB_SETTINGS, PHI2_REPO, type HubSettings } from '../../shared/hub';

/**
 * Files of a Hugging Face Hub repository at a revision, over plain HTTP GET:
 * `{baseUrl}/{repo}/resolve/{revision}/{file}`, following redirects (large files live on a CDN), with
 * a single `Range: bytes=N-` header when resuming and no other custom header: a single byte range is
 * a CORS-safelisted request header, so no request needs a preflight.
 */

/** Hosts plain http may reach: this machine only (development servers, local mirrors), as the page's Content-Security-Policy allows. */
const LOOPBACK = new Set(['localhost', '127.0.0.1']);

/**
 * Why a download may not come from `url`, or null when it may: https anywhere, plain http only from
 * this machine (anything else could be read or changed on the way, and the page's Content-Security-Policy
 * refuses it too).
 */
export function insecureUrlProblem(url: URL): string | null {
  if (url.protocol === 'https:') return null;
  if (url.protocol === 'http:') {
    return LOOPBACK.has(url.hostname) ? null : `plain http is only allowed for localhost; use https://${url.host}${url.pathname} instead`;
  }
  return `${url.protocol.replace(/:$/, '')} URLs are not downloaded; use an https:// URL`;
}

const REPO_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)?$/;

export function checkHubSettings(s: HubSettings): HubSettings {
  if (!REPO_NAME.test(s.repo) || s.repo.includes('..')) {
    throw new HubError('not-found', `"${s.repo}" is not a Hub repository name (expected "owner/name", e.g. ${PHI2_REPO}).`);
  }
  if (!s.revision || /\s/.test(s.revision)) throw new HubError('not-found', `"${s.revision}" is not a revision (a commit hash, branch or tag).`);
  let url: URL;
  try {
    url = new URL(s.baseUrl);
  } catch {
    throw new HubError('not-found', `"${s.baseUrl}" is not a URL.`);
  }
  const insecure = insecureUrlProblem(url);
  if (insecure) throw new HubError('not-found', `"${s.baseUrl}" cannot be used: ${insecure}.`);
  return { ...s, baseUrl: s.baseUrl.replace(/\/+$/, '') };
}

export function hubFileUrl(s: HubSettings, file: string): string {
  const path = file.split('/').map(encodeURIComponent).join('/');
  return `${s.baseUrl.replace(/\/+$/, '')}/${s.repo}/resolve/${encodeURIComponent(s.revision)}/${path}`;
}

export class HubSource implements CheckpointSource {
  readonly settings: HubSettings;
  readonly description: ModelSource;
  readonly displayName: string;
  readonly remote = true;

  constructor(
    private readonly platform: Pick<Platform, 'fetch'>,
    settings: HubSettings = DEFAULT_HUB_SETTINGS,
  ) {
    this.settings = checkHubSettings(settings);
    this.description = { kind: 'hub', ...this.settings };
    this.displayName = this.settings.repo;
  }

  private where(file: string): string {
    return `${file} of ${this.settings.repo} at revision ${this.settings.revision}`;
  }

  private async get(file: string, offset: number, signal?: AbortSignal): Promise<Response> {
    const init: RequestInit = { method: 'GET', redirect: 'follow', signal };
    if (offset > 0) init.headers = { Range: `bytes=${offset}-` };
    const url = hubFileUrl(this.settings, file);
    try {
      return await this.platform.fetch(url, init);
    } catch (err) {
      if (signal?.aborted) throw abortedError(file);
      const redirects = await diagnoseRedirects(this.platform, url, signal);
      if (redirects) throw new HubError('redirects', redirects, file);
      throw new HubError('unreachable', `Could not reach ${this.settings.baseUrl} for ${this.where(file)}: ${(err as Error).message}.`, file);
    }
  }

  /** Turns an unsuccessful status into the error that explains it. */
  private statusError(file: string, res: Response): HubError {
    const s = res.status;
    if (s === 404) {
      return new HubError(
        'not-found',
        `${this.where(file)} was not found (HTTP 404). Check the repository name and the revision; the file may not exist there.`,
        file,
        s,
      );
    }
    if (s === 401 || s === 403) {
      return new HubError(
        'unauthorized',
        `${this.where(file)} needs authorisation (HTTP ${s}): the repository is private or gated (its license must be accepted while signed in). ` +
          'This app downloads anonymously; pick a public repository, or download the files yourself and import them from disk.',
        file,
        s,
      );
    }
    if (s === 429) return new HubError('rate-limited', `The Hub is rate-limiting requests for ${this.where(file)} (HTTP 429).`, file, s);
    return new HubError('http', `The Hub answered HTTP ${s} ${res.statusText} for ${this.where(file)}.`, file, s);
  }

  async readText(file: string, signal?: AbortSignal): Promise<string | null> {
    const res = await this.get(file, 0, signal);
    if (res.status === 404) {
      await discard(res);
      return null;
    }
    if (res.status !== 200) {
      await discard(res);
      throw this.statusError(file, res);
    }
    try {
      return await res.text();
    } catch (err) {
      if (signal?.aborted) throw abortedError(file);
      throw new HubError('network', `The connection dropped while reading ${this.where(file)}: ${(err as Error).message}`, file);
    }
  }

  async open(file: string, offset: number, signal?: AbortSignal): Promise<OpenedFile> {
    const res = await this.get(file, offset, signal);
    const etag = normaliseEtag(res.headers.get('etag'));
    if (res.status === 416) {
      // The offset lies past the end: the file is shorter than when the download began.
      await discard(res);
      throw new HubError('changed', `${this.where(file)} is shorter than the ${offset} bytes already downloaded (HTTP 416): it changed on the server.`, file, 416);
    }
    if (res.status !== 200 && res.status !== 206) {
      await discard(res);
      throw this.statusError(file, res);
    }
    if (!res.body) throw new HubError('bad-response', `The response for ${this.where(file)} has no body.`, file, res.status);
    const length = parseLength(res.headers.get('content-length'));
    const body = checkedBody(res.body, file, this.where(file), length, signal);
    if (res.status === 200) return { body, offset: 0, size: length, etag };
    const header = res.headers.get('content-range');
    if (header === null) {
      // A cross-origin response whose server did not expose Content-Range: a 206 answering a single
      // `bytes=N-` range starts at N, and the size follows from Content-Length (always readable).
      return { body, offset, size: length !== null ? offset + length : null, etag };
    }
    const range = parseContentRange(header);
    if (!range || range.start !== offset || (range.total !== null && range.end !== range.total - 1)) {
      await discard(res);
      throw new HubError('bad-response', `Asked for ${this.where(file)} from byte ${offset} but the server sent Content-Range ${JSON.stringify(header)}.`, file, 206);
    }
    return { body, offset, size: range.total ?? (length !== null ? offset + length : null), etag };
  }
}

/** Weak and strong forms of the same ETag name the same content for our purpose. */
function normaliseEtag(etag: string | null): string | null {
  if (!etag) return null;
  return etag.replace(/^W\//, '').trim();
}

function parseLength(v: string | null): number | null {
  if (v === null || !/^\d+$/.test(v.trim())) return null;
  return Number(v.trim());
}

export function parseContentRange(v: string | null): { start: number; end: number; total: number | null } | null {
  if (!v) return null;
  const m = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(v.trim());
  if (m) return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? null : Number(m[3]) };
  const unsatisfied = /^bytes\s+\*\/(\d+)$/i.exec(v.trim());
  if (unsatisfied) return { start: -1, end: -1, total: Number(unsatisfied[1]) };
  return null;
}

async function discard(res: Response): Promise<void> {
  try {
    await res.body?.cancel();
  } catch {
    // nothing to release
  }
}

/**
 * A response body's chunks as they arrive. A read that fails (a dropped connection, an abort) is thrown
 * as `readError(err, bytesReceived)`; a body left before its end is cancelled, so nothing stays open.
 */
export async function* bodyChunks(
  body: ReadableStream<Uint8Array>,
  readError: (err: unknown, received: number) => Error,
): AsyncGenerator<Uint8Array, void, undefined> {
  const reader = body.getReader();
  let received = 0;
  let finished = false;
  try {
    for (;;) {
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        r = await reader.read();
      } catch (err) {
        throw readError(err, received);
      }
      if (r.done) {
        finished = true;
        return;
      }
      received += r.value.length;
      yield r.value;
    }
  } finally {
    if (!finished) await reader.cancel().catch(() => undefined);
  }
}

/**
 * The body as chunks; a read that fails (dropped connection) becomes a retryable 'network' error, and
 * a body that ends before its Content-Length a 'bad-response' one.
 */
async function* checkedBody(
  body: ReadableStream<Uint8Array>,
  file: string,
  where: string,
  length: number | null,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array, void, undefined> {
  let received = 0;
  const dropped = (err: unknown, n: number) =>
    signal?.aborted ? abortedError(file) : new HubError('network', `The connection dropped after ${n} bytes of ${where}: ${(err as Error).message}`, file);
  for await (const chunk of bodyChunks(body, dropped)) {
    received += chunk.length;
    yield chunk;
  }
  if (length !== null && received !== length) {
    throw new HubError('bad-response', `The server sent ${received} of the ${length} bytes it announced for ${where}.`, file);
  }
}
