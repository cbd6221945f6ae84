import type { Platform } from '../platform/types';
import { HubError } from '../weights/errors';
import { bodyChunks, insecureUrlProblem, parseContentRange } from '../weights/hub';
import { HUB_BASE_URL } from '../../shared/hub';
import { diagnoseRedirects } from '../weights/redirects';
import { backoffDelay, DEFAULT_RETRY, isRetryable, sleep, type RetryPolicy } from '../weights/retry';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, adapterWeightsLimit, type AdapterFiles } from './files';
import { unzipAdapter } from './zip';
import { MAX_ADAPTER_CONFIG_BYTES, readAdapterConfigJson } from './config-json';
import { LORA_TARGETS, type LinearShapes, type LoraSettings } from '../../shared/lora';
import { AdapterError, MAX_LORA_RANK, NOMINAL_SHAPES, readAdapterConfig, resolveAdapterConfig, type PeftLoraConfig } from './peft';
import { CHUNK_BYTES } from '../store/chunks';
import type { DownloadCache } from './store';


/**
 * PEFT adapters from the Hugging Face Hub or any URL: a repository id ("owner/name", optionally
 * "@revision"), a resolve URL of an adapter folder (`{base}/{repo}/resolve/{revision}/`, or of one of
 * its two files), a Hub page URL, or a .zip of the two files. Downloads report progress, retry what
 * is worth retrying, continue a dropped connection with an HTTP Range request, and keep what arrived
 * in IndexedDB (DownloadCache) so that a reload resumes instead of starting over.
 */

export type AdapterLocation =
  /** A folder holding adapter_config.json and adapter_model.safetensors; `url` ends with '/'. */
  | { kind: 'folder'; url: string; repo: string | null; revision: string | null }
  /** A .zip holding the two files. */
  | { kind: 'zip'; url: string; repo: string | null; revision: string | null };

const REPO_ID = /^([A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*)(?:@([^\s@/][^\s@]*))?$/;

/** Where an adapter lives, from what a person typed or a share link carried. */
export function locateAdapter(input: string, options: { hubBaseUrl?: string; revision?: string } = {}): AdapterLocation {
  const text = input.trim();
  const hub = (options.hubBaseUrl ?? HUB_BASE_URL).replace(/\/+$/, '');
  let hubUrl: URL;
  try {
    hubUrl = new URL(hub);
  } catch {
    throw new AdapterError(`The Hub base URL "${hub}" is not a URL.`);
  }
  const hubInsecure = insecureUrlProblem(hubUrl);
  if (hubInsecure) throw new AdapterError(`The Hub base URL "${hub}" cannot be used: ${hubInsecure}.`);
  if (!text) throw new AdapterError('Enter a Hub repository id (owner/name) or the URL of an adapter folder or .zip.');
  const id = REPO_ID.exec(text);
  if (id && !text.includes('://')) {
    if (id[1].includes('..')) throw new AdapterError(`"${text}" is not a Hub repository id.`);
    const revision = id[2] ?? options.revision ?? 'main';
    return { kind: 'folder', url: `${hub}/${id[1]}/resolve/${encodeURIComponent(revision)}/`, repo: id[1], revision };
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new AdapterError(`"${text}" is neither a Hub repository id (owner/name) nor a URL.`);
  }
  const insecure = insecureUrlProblem(url);
  if (insecure) throw new AdapterError(`"${text}" cannot be downloaded: ${insecure}.`);
  const badEscape = /%(?![0-9A-Fa-f]{2})/.exec(url.pathname);
  if (badEscape) {
    const at = url.pathname.slice(badEscape.index, badEscape.index + 3);
    throw new AdapterError(
      `"${text}" has a malformed percent-escape ("${at}" in its path): a "%" must be followed by two hexadecimal digits. Write a literal "%" as %25, or copy the link again.`,
    );
  }
  url.hash = '';
  const parts = url.pathname.split('/').filter(Boolean);
  // /{owner}/{name}/{resolve|tree|blob}/{revision}/{path...}: the Hub's file, folder and page URLs.
  const mode = parts[2];
  const isHubPath = parts.length >= 4 && (mode === 'resolve' || mode === 'tree' || mode === 'blob');
  const repo = isHubPath ? `${parts[0]}/${parts[1]}` : null;
  const revision = isHubPath ? decodePart(parts[3]) : null;
  if (url.pathname.toLowerCase().endsWith('.zip')) {
    if (isHubPath && mode !== 'resolve') parts[2] = 'resolve';
    url.pathname = `/${parts.join('/')}`;
    return { kind: 'zip', url: url.toString(), repo, revision };
  }
  url.search = '';
  if (!isHubPath && parts.length === 2 && url.origin === new URL(hub).origin) {
    // A repository's page on the Hub itself.
    return { kind: 'folder', url: `${url.origin}/${parts[0]}/${parts[1]}/resolve/main/`, repo: `${parts[0]}/${parts[1]}`, revision: 'main' };
  }
  if (isHubPath) parts[2] = 'resolve';
  const last = parts[parts.length - 1];
  if (last === ADAPTER_CONFIG || last === ADAPTER_WEIGHTS) parts.pop();
  url.pathname = `/${parts.join('/')}${parts.length ? '/' : ''}`;
  return { kind: 'folder', url: url.toString(), repo, revision };
}

/** A percent-encoded path segment as text; as it is where it cannot be decoded. */
function decodePart(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

/** A short human name for a location: the repository, or the URL's last part. */
export function locationLabel(loc: AdapterLocation): string {
  const parts = new URL(loc.url).pathname.split('/').filter(Boolean);
  const last = decodePart(parts[parts.length - 1] ?? new URL(loc.url).host);
  const repo = loc.repo && loc.revision && loc.revision !== 'main' ? `${loc.repo}@${loc.revision}` : loc.repo;
  if (loc.kind === 'zip') return repo ? `${repo}: ${last}` : last;
  return repo ?? last;
}

/** A name for an adapter from where it came: the repository's name, or the .zip's or folder's. */
export function locationName(loc: AdapterLocation): string {
  const parts = new URL(loc.url).pathname.split('/').filter(Boolean);
  const last = decodePart(parts[parts.length - 1] ?? 'adapter');
  if (loc.kind === 'zip') return last.replace(/\.zip$/i, '');
  return loc.repo ? loc.repo.split('/')[1] : last;
}

export interface AdapterPreview {
  location: AdapterLocation;
  /** From adapter_config.json (resolved on the model given, else on NOMINAL_LAYERS layers); null for a .zip until it is downloaded. */
  settings: LoraSettings | null;
  /** adapter_config.json as read, to resolve against a model later; null for a .zip. */
  config: PeftLoraConfig | null;
  baseModel: string | null;
  /** Bytes of adapter_model.safetensors (folder) or of the .zip; null when the server does not say. */
  bytes: number | null;
}

export interface AdapterDownloadProgress {
  file: string;
  received: number;
  total: number | null;
  /** A retry, a resume, a restart: worth showing. */
  notice?: string;
}

export interface DownloadOptions {
  signal?: AbortSignal;
  onProgress?(p: AdapterDownloadProgress): void;
  /** Keeps what arrived so a later call resumes (after a reload or a dropped connection); null to keep nothing. */
  cache?: DownloadCache | null;
  retry?: RetryPolicy;
  /** The model the adapter is for, which bounds its size (default: Phi-2's shapes). */
  shapes?: LinearShapes;
  /** downloadFile: refuse a file larger than this, from its Content-Length or the bytes received. */
  maxBytes?: number;
  /** Why maxBytes is what it is, for the message. */
  limitReason?: string;
}

type Fetcher = Pick<Platform, 'fetch'>;

function fileUrl(loc: AdapterLocation, file: string): string {
  return new URL(file, loc.url).toString();
}

function abortError(): Error {
  const err = new Error('The download was stopped; nothing of it was kept.');
  err.name = 'AbortError';
  return err;
}

async function request(platform: Fetcher, url: string, init: RequestInit, what: string): Promise<Response> {
  try {
    return await platform.fetch(url, { redirect: 'follow', ...init });
  } catch (err) {
    if (init.signal?.aborted) throw abortError();
    const redirects = await diagnoseRedirects(platform, url, init.signal ?? undefined);
    if (redirects) throw new HubError('redirects', `${what}: ${redirects}`, what);
    throw new HubError('network', `Could not reach ${new URL(url).host} for ${what}: ${(err as Error).message}. Check the connection and try again.`, what);
  }
}

function statusError(status: number, url: string, what: string): HubError {
  if (status === 404) {
    return new HubError('not-found', `${what} was not found at ${url} (HTTP 404). Check the repository name, revision or URL: a PEFT adapter folder has ${ADAPTER_CONFIG} and ${ADAPTER_WEIGHTS}.`, what, status);
  }
  if (status === 401 || status === 403) {
    return new HubError('unauthorized', `${url} needs authorisation (HTTP ${status}): the repository is private or gated. Download the files yourself and import them.`, what, status);
  }
  if (status === 429) return new HubError('rate-limited', `The server is rate-limiting downloads of ${what} (HTTP 429). Wait a minute and try again.`, what, status);
  return new HubError('http', `The server answered HTTP ${status} for ${what} (${url}).`, what, status);
}

/** adapter_config.json and the size of the weights (or of the .zip): what a person confirms before downloading. */
export async function previewAdapter(platform: Fetcher, location: AdapterLocation, signal?: AbortSignal, model: LinearShapes | null = null): Promise<AdapterPreview> {
  if (location.kind === 'zip') return { location, settings: null, config: null, baseModel: null, bytes: await remoteSize(platform, location.url, 'the adapter .zip', signal) };
  const { config } = await fetchConfig(platform, location, signal);
  const bytes = await remoteSize(platform, fileUrl(location, ADAPTER_WEIGHTS), ADAPTER_WEIGHTS, signal);
  return { location, settings: resolveAdapterConfig(config, model, ADAPTER_CONFIG), config, baseModel: config.baseModel, bytes };
}

async function fetchConfig(platform: Fetcher, location: AdapterLocation, signal?: AbortSignal): Promise<{ bytes: Uint8Array; config: PeftLoraConfig }> {
  const url = fileUrl(location, ADAPTER_CONFIG);
  const res = await request(platform, url, { signal }, ADAPTER_CONFIG);
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => undefined);
    throw statusError(res.status, url, ADAPTER_CONFIG);
  }
  const bytes = await readCapped(res, MAX_ADAPTER_CONFIG_BYTES, url, signal);
  let json: unknown;
  try {
    json = readAdapterConfigJson(bytes, ADAPTER_CONFIG);
  } catch (err) {
    throw new AdapterError(`${(err as Error).message} (from ${url}: does the URL point at a PEFT adapter folder?)`);
  }
  return { bytes, config: readAdapterConfig(json, ADAPTER_CONFIG) };
}

/** A small response's body, refused as soon as it (or its Content-Length) passes `cap` bytes. */
async function readCapped(res: Response, cap: number, url: string, signal?: AbortSignal): Promise<Uint8Array> {
  const tooLarge = (n: string) =>
    new AdapterError(`${url} is ${n} bytes; a PEFT adapter config is a few kilobytes (at most ${cap / 1024} KiB accepted): the URL does not point at an adapter folder.`);
  const declared = contentLength(res);
  if (declared !== null && declared > cap) {
    await res.body?.cancel().catch(() => undefined);
    throw tooLarge(declared.toLocaleString('en-US'));
  }
  if (!res.body) return new Uint8Array(0);
  const parts: Uint8Array[] = [];
  let total = 0;
  const dropped = (err: unknown) =>
    signal?.aborted ? abortError() : new HubError('network', `The connection dropped while reading ${url}: ${(err as Error).message}`, ADAPTER_CONFIG);
  for await (const chunk of bodyChunks(res.body, dropped)) {
    total += chunk.length;
    if (total > cap) throw tooLarge(`more than ${cap.toLocaleString('en-US')}`);
    parts.push(chunk);
  }
  return concat(parts, total);
}

function contentLength(res: Response): number | null {
  const length = res.headers.get('content-length');
  return length !== null && /^\d+$/.test(length.trim()) ? Number(length) : null;
}

/** Content-Length of a HEAD request (after redirects), or null when the server does not say. */
async function remoteSize(platform: Fetcher, url: string, what: string, signal?: AbortSignal): Promise<number | null> {
  const res = await request(platform, url, { method: 'HEAD', signal }, what);
  if (res.status === 404 || res.status === 401 || res.status === 403) throw statusError(res.status, url, what);
  if (res.status !== 200) return null;
  const length = res.headers.get('content-length');
  return length !== null && /^\d+$/.test(length.trim()) ? Number(length) : null;
}

/** The largest adapter .zip downloaded: any rank this engine takes on `shapes`, in F32, and never more than 2 GiB. */
export function adapterZipLimit(shapes: LinearShapes): number {
  const widest = adapterWeightsLimit({ r: MAX_LORA_RANK, alpha: 1, dropout: 0, useRslora: false, targets: [...LORA_TARGETS], layers: 'all' }, shapes);
  return Math.min(2 * 2 ** 30, widest + MAX_ADAPTER_CONFIG_BYTES + 64 * 1024);
}

/**
 * Downloads an adapter's two files (a folder) or its .zip, with progress, retries and resume. Sizes are
 * bounded before the bytes are read: adapter_config.json by MAX_ADAPTER_CONFIG_BYTES, the weights by
 * what the config implies on `options.shapes` (adapterWeightsLimit), a .zip by adapterZipLimit and then
 * entry by entry as it is unpacked.
 */
export async function downloadAdapter(platform: Fetcher, location: AdapterLocation, options: DownloadOptions = {}): Promise<AdapterFiles> {
  const shapes = options.shapes ?? NOMINAL_SHAPES;
  const limitFor = (config: PeftLoraConfig) => adapterWeightsLimit(resolveAdapterConfig(config, shapes, ADAPTER_CONFIG), shapes);
  if (location.kind === 'zip') {
    const zip = await downloadFile(platform, location.url, 'the adapter .zip', { ...options, maxBytes: adapterZipLimit(shapes), limitReason: 'the largest adapter .zip this app takes' });
    return unzipAdapter(zip, limitFor);
  }
  const config = await fetchConfig(platform, location, options.signal);
  const weights = await downloadFile(platform, fileUrl(location, ADAPTER_WEIGHTS), ADAPTER_WEIGHTS, {
    ...options,
    maxBytes: limitFor(config.config),
    limitReason: `the most an adapter with r ${config.config.r} on these layers can take, in F32`,
  });
  return { [ADAPTER_CONFIG]: config.bytes, [ADAPTER_WEIGHTS]: weights };
}

function normaliseEtag(etag: string | null): string | null {
  return etag ? etag.replace(/^W\//, '').trim() : null;
}

/**
 * One file, resumable: what the cache holds is asked for again only from where it ends (Range), and
 * only while the server's ETag is the one it had; a changed file starts over. A dropped connection is
 * retried with backoff from the last byte received; `retry.attempts` failures in a row without new
 * bytes end the download with the last error.
 */
export async function downloadFile(platform: Fetcher, url: string, what: string, options: DownloadOptions = {}): Promise<Uint8Array> {
  const { signal, onProgress } = options;
  /** Dropped after a failed write (a full disk): the download goes on without being kept. */
  let cache = options.cache ?? null;
  const chunkBytes = cache?.chunkBytes ?? CHUNK_BYTES;
  const policy = options.retry ?? DEFAULT_RETRY;
  /** Whole chunks held (and, with a cache, stored), then the bytes of the chunk being filled. */
  let chunks: Uint8Array[] = [];
  let checksums: number[] = [];
  let tail: Uint8Array[] = [];
  let tailBytes = 0;
  let etag: string | null = null;
  let size: number | null = null;
  let notice: string | undefined;
  let stored = cache ? await cache.load(url).catch(() => null) : null;
  if (stored && stored.bytes.length % chunkBytes !== 0) {
    // Kept in chunks of another size (an older version): not a whole number of ours.
    await cache?.clear(url).catch(() => undefined);
    stored = null;
  }
  if (stored) {
    for (let at = 0; at < stored.bytes.length; at += chunkBytes) chunks.push(stored.bytes.subarray(at, at + chunkBytes));
    checksums = stored.checksums;
    etag = stored.etag;
    size = stored.size;
    notice = `Resuming ${what} from ${stored.bytes.length} bytes kept from an earlier attempt.`;
  }
  const received = () => chunks.length * chunkBytes + tailBytes;
  const restart = async (why: string) => {
    chunks = [];
    checksums = [];
    tail = [];
    tailBytes = 0;
    etag = null;
    size = null;
    notice = why;
    await cache?.clear(url).catch(() => undefined);
  };
  const flushFullChunks = async () => {
    while (tailBytes >= chunkBytes) {
      const joined = concat(tail, tailBytes);
      const piece = joined.subarray(0, chunkBytes);
      const rest = joined.subarray(chunkBytes);
      if (cache) {
        try {
          checksums = await cache.append(url, { etag, size }, chunks.length, piece, checksums);
        } catch {
          await cache.clear(url).catch(() => undefined);
          cache = null;
        }
      }
      chunks.push(piece);
      tail = rest.length ? [rest] : [];
      tailBytes = rest.length;
    }
  };

  const maxBytes = options.maxBytes ?? Infinity;
  const tooLarge = (n: number, exact: boolean) =>
    new AdapterError(
      `${what} is ${exact ? '' : 'more than '}${n.toLocaleString('en-US')} bytes, more than the ${maxBytes.toLocaleString('en-US')} it can be ` +
        `(${options.limitReason ?? 'the limit for an adapter'}): it is not this adapter's file, so it was not downloaded.`,
    );
  try {
    return await receive();
  } catch (err) {
    // Stopped by the user, or refused for its size: nothing of it is kept. A dropped connection keeps
    // what arrived, so that starting again (also after a reload) resumes.
    if ((err as Error).name === 'AbortError' || err instanceof AdapterError) await cache?.clear(url).catch(() => undefined);
    throw err;
  }

  async function receive(): Promise<Uint8Array> {
    let failures = 0;
    let restarts = 0;
    for (;;) {
      if (signal?.aborted) throw abortError();
      const offset = received();
      const before = offset;
      try {
        const init: RequestInit = { signal };
        if (offset > 0) init.headers = { Range: `bytes=${offset}-` };
        const res = await request(platform, url, init, what);
        const resEtag = normaliseEtag(res.headers.get('etag'));
        if (res.status === 416 || (res.status === 200 && offset > 0) || (offset > 0 && etag && resEtag && resEtag !== etag)) {
          // The file shrank, the server ignores Range, or the file changed: only a fresh start is safe.
          await res.body?.cancel().catch(() => undefined);
          if (++restarts > 2) throw new HubError('changed', `${what} kept changing on the server while it downloaded; try again later.`, what, res.status);
          await restart(res.status === 200 ? `The server cannot resume ${what}; downloading it from the start.` : `${what} changed on the server; downloading it from the start.`);
          continue;
        }
        if (res.status !== 200 && res.status !== 206) {
          await res.body?.cancel().catch(() => undefined);
          throw statusError(res.status, url, what);
        }
        etag ??= resEtag;
        const declared = contentLength(res);
        if (res.status === 206) {
          const range = parseContentRange(res.headers.get('content-range'));
          if (range && range.start !== offset) {
            await res.body?.cancel().catch(() => undefined);
            throw new HubError('bad-response', `Asked for ${what} from byte ${offset} but the server sent bytes from ${range.start}.`, what, 206);
          }
          size = range?.total ?? (declared !== null ? offset + declared : size);
        } else size = declared;
        if (size !== null && size > maxBytes) {
          await res.body?.cancel().catch(() => undefined);
          throw tooLarge(size, true);
        }
        if (!res.body) throw new HubError('bad-response', `The response for ${what} has no body.`, what, res.status);
        onProgress?.({ file: what, received: offset, total: size, notice });
        notice = undefined;
        const dropped = (err: unknown) =>
          signal?.aborted ? abortError() : new HubError('network', `The connection dropped after ${received()} bytes of ${what}: ${(err as Error).message}`, what);
        for await (const chunk of bodyChunks(res.body, dropped)) {
          tail.push(chunk);
          tailBytes += chunk.length;
          if (size !== null && received() > size) throw new HubError('bad-response', `The server sent more than the ${size} bytes of ${what} it announced.`, what);
          if (received() > maxBytes) throw tooLarge(maxBytes, false);
          await flushFullChunks();
          onProgress?.({ file: what, received: received(), total: size });
        }
        if (size !== null && received() !== size) throw new HubError('bad-response', `The server sent ${received()} of the ${size} bytes of ${what}.`, what);
        const out = concat([...chunks, ...tail], received());
        await cache?.clear(url).catch(() => undefined);
        return out;
      } catch (err) {
        if ((err as Error).name === 'AbortError' || signal?.aborted) throw abortError();
        if (!isRetryable(err, true)) throw err;
        failures = received() > before ? 1 : failures + 1;
        if (failures >= policy.attempts) throw err;
        notice = `${(err as Error).message} Retrying (${failures} of ${policy.attempts - 1})…`;
        onProgress?.({ file: what, received: received(), total: size, notice });
        await sleep(backoffDelay(failures, policy), signal).catch(() => {
          throw abortError();
        });
      }
    }
  }
}

function concat(parts: readonly Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1 && parts[0].length === total) return parts[0];
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
