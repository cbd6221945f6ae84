/**
 * A local stand-in for the Hugging Face Hub, on 127.0.0.1 at a random port: serves directories as
 * repositories the way the Hub does, with faults to inject.
 *
 *   GET /{repo}/resolve/{revision}/{file}   small files directly; large ones answer 302 to
 *   GET /cdn/{repo}/{revision}/{file}       a CDN-like path on the same server.
 *
 * Both honour `Range: bytes=N-` / `bytes=N-M` (206 + Content-Range; 416 past the end), send ETag,
 * Content-Length, Accept-Ranges and CORS headers, and answer 404 for unknown repos, revisions and
 * files. Faults per file name: dropped connections, 5xx answers, forced statuses, a truncated file, a
 * file that changes between requests (its F16 weights negated: still a valid checkpoint, different
 * bytes and ETag), throttling, and ignoring Range. Every fault is counted down, so the server never
 * loops; close() ends every connection and timer.
 *
 * With `tokens`, it also takes what @huggingface/hub sends to publish a repository (hub-write-api.ts):
 * repositories created that way are then served here like the others.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { HubWriteApi, type HubUser } from './hub-write-api';

export const TEST_REVISION = '0123456789abcdef0123456789abcdef01234567';

/** The repository tiny-phi is served under in most tests, and the id its int8 download is stored as. */
export const TINY_REPO = 'test/tiny-phi';
export const TINY_MODEL_ID = `${TINY_REPO}@${TEST_REVISION}:int8`;

export interface FileFaults {
  /** Drop the connection after this many body bytes ('random': somewhere in the body), for the next `times` responses (default 1). */
  dropAfter?: { bytes: number | 'random'; times?: number };
  /** Answer 500 this many times before serving. */
  serverErrors?: number;
  /** Answer this status (401, 403, 429, 503...) `times` times (default: always). */
  status?: { code: number; times?: number };
  /** Serve the file shorter by this many bytes (a damaged upload), with a matching Content-Length. */
  truncateBy?: number;
  /** After this many requests for the file, serve its second version (weights negated). */
  changeAfterRequests?: number;
  /** Send the body at this many bytes per second. */
  throttleBytesPerSecond?: number;
  /** Answer 200 with the whole file to Range requests, as a server without Range support does. */
  ignoreRange?: boolean;
  /** Leave Content-Range out of 206 answers, as a browser hides it when CORS does not expose it. */
  omitContentRange?: boolean;
  /** Send the body chunked, without Content-Length (the size is then known only from the bytes). */
  omitContentLength?: boolean;
}

export interface HubServerOptions {
  /** Repository name ("test/tiny-phi") to the directory it serves. */
  repos: Record<string, string>;
  /** Revisions that exist (default: "main" and TEST_REVISION). */
  revisions?: string[];
  /** Files larger than this are redirected to the CDN path (default 64 KiB). */
  redirectAbove?: number;
  faults?: Record<string, FileFaults>;
  seed?: number;
  /** Access tokens the write API accepts, and whose they are. */
  tokens?: Record<string, HubUser>;
}

export interface LoggedRequest {
  method: string;
  path: string;
  range: string | null;
  status: number;
  headers: Record<string, string | string[] | undefined>;
}

interface Version {
  bytes: Uint8Array;
  etag: string;
}

export class HubServer {
  readonly requests: LoggedRequest[] = [];
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private readonly files = new Map<string, Version[]>(); // "repo/file" → [original, changed]
  private readonly requestCounts = new Map<string, number>();
  private faults: Record<string, FileFaults>;
  private random: () => number;
  private closed = false;
  url = '';
  /** Repositories created, commits made and LFS objects received through the write API. */
  readonly write: HubWriteApi;

  private constructor(private readonly options: HubServerOptions) {
    this.faults = structuredClone(options.faults ?? {});
    let s = (options.seed ?? 1) >>> 0;
    this.random = () => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return s / 2 ** 32;
    };
    for (const [repo, dir] of Object.entries(options.repos)) {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (!statSync(path).isFile()) continue;
        const bytes = new Uint8Array(readFileSync(path));
        this.files.set(`${repo}/${name}`, [version(bytes), version(changedVersion(name, bytes))]);
      }
    }
    this.write = new HubWriteApi(options.tokens ?? {}, () => this.url);
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  static async start(options: HubServerOptions): Promise<HubServer> {
    const hub = new HubServer(options);
    await new Promise<void>((resolve) => hub.server.listen(0, '127.0.0.1', resolve));
    hub.url = `http://127.0.0.1:${(hub.server.address() as AddressInfo).port}`;
    return hub;
  }

  /** Replaces the faults of a file; its counters (and any change) start afresh. */
  setFaults(file: string, faults: FileFaults): void {
    this.faults[file] = structuredClone(faults);
    for (const key of [...this.requestCounts.keys()]) if (key.endsWith(`/${file}`)) this.requestCounts.delete(key);
  }

  /** The bytes a file has now (after any change) as served. */
  content(repo: string, file: string): Uint8Array {
    const versions = this.files.get(`${repo}/${file}`);
    if (!versions) throw new Error(`no ${repo}/${file}`);
    return versions[this.versionIndex(repo, file)].bytes;
  }

  /** The ETag a file has now. */
  etag(repo: string, file: string): string {
    return this.files.get(`${repo}/${file}`)![this.versionIndex(repo, file)].etag;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private versionIndex(repo: string, file: string): number {
    const after = this.faults[file]?.changeAfterRequests;
    return after !== undefined && (this.requestCounts.get(`${repo}/${file}`) ?? 0) >= after ? 1 : 0;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const log: LoggedRequest = { method: req.method ?? '', path: req.url ?? '', range: req.headers.range ?? null, status: 0, headers: { ...req.headers } };
    this.requests.push(log);
    const send = (status: number, headers: Record<string, string> = {}, body?: string) => {
      log.status = status;
      res.writeHead(status, { ...CORS, ...headers });
      res.end(body);
    };
    if (req.method === 'OPTIONS') {
      return send(204, { 'Access-Control-Allow-Headers': 'Range, Authorization, Content-Type, Accept, X-Request-Id', 'Access-Control-Allow-Methods': 'GET, HEAD, POST, PUT' });
    }
    if (this.write.handle(req, send)) return;
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405);
    const url = new URL(req.url ?? '/', 'http://x');
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    // /{owner}/{name}/resolve/{revision}/{file}  or  /cdn/{owner}/{name}/{revision}/{file}
    const cdn = parts[0] === 'cdn';
    const p = cdn ? parts.slice(1) : parts;
    if ((!cdn && p[2] !== 'resolve') || p.length !== (cdn ? 4 : 5)) return send(404, {}, 'Not found');
    const repo = `${p[0]}/${p[1]}`;
    const [revision, file] = cdn ? [p[2], p[3]] : [p[3], p[4]];
    const published = this.write.repos.get(repo);
    if (!Object.prototype.hasOwnProperty.call(this.options.repos, repo) && !published) return send(404, { 'X-Error-Code': 'RepoNotFound' }, 'Repository not found');
    if (published?.private && this.write.user(req)?.name !== p[0]) return send(401, { 'X-Error-Code': 'RepoNotFound' }, 'Repository not found');
    if (!(this.options.revisions ?? ['main', TEST_REVISION]).includes(revision)) return send(404, { 'X-Error-Code': 'RevisionNotFound' }, 'Invalid rev id');
    const key = `${repo}/${file}`;
    const publishedFile = published?.files.get(file);
    const versions = publishedFile ? [version(publishedFile)] : this.files.get(key);
    if (!versions) return send(404, { 'X-Error-Code': 'EntryNotFound' }, 'Entry not found');

    const faults = this.faults[file] ?? {};
    if (faults.status && (faults.status.times ?? Infinity) > 0) {
      faults.status.times = (faults.status.times ?? Infinity) - 1;
      return send(faults.status.code, faults.status.code === 429 ? { 'Retry-After': '0' } : {}, `status ${faults.status.code}`);
    }
    if (faults.serverErrors && faults.serverErrors > 0) {
      faults.serverErrors--;
      return send(500, {}, 'Internal Error');
    }
    const current = versions[Math.min(versions.length - 1, this.versionIndex(repo, file))];
    if (!cdn && current.bytes.length > (this.options.redirectAbove ?? 65536)) {
      return send(302, { Location: `/cdn/${p[0]}/${p[1]}/${encodeURIComponent(revision)}/${encodeURIComponent(file)}`, 'X-Linked-Etag': current.etag });
    }
    // A request for the content itself: counts towards a change.
    this.requestCounts.set(key, (this.requestCounts.get(key) ?? 0) + 1);
    const served = faults.truncateBy ? current.bytes.subarray(0, current.bytes.length - faults.truncateBy) : current.bytes;
    const size = served.length;
    let start = 0;
    let end = size - 1;
    let status = 200;
    const range = req.headers.range;
    if (range && !faults.ignoreRange) {
      const m = /^bytes=(\d+)-(\d*)$/.exec(range);
      if (!m) return send(416, { 'Content-Range': `bytes */${size}` });
      start = Number(m[1]);
      end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
      if (start >= size || end < start) return send(416, { 'Content-Range': `bytes */${size}`, ETag: current.etag });
      status = 206;
    }
    const body = served.subarray(start, end + 1);
    const headers: Record<string, string> = {
      ETag: current.etag,
      'Content-Length': String(body.length),
      'Accept-Ranges': 'bytes',
      'Content-Type': 'application/octet-stream',
    };
    if (status === 206 && !faults.omitContentRange) headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
    if (faults.omitContentLength) delete headers['Content-Length'];
    log.status = status;
    res.writeHead(status, { ...CORS, ...headers });
    if (req.method === 'HEAD') return void res.end();

    let dropAt = Infinity;
    if (faults.dropAfter && (faults.dropAfter.times ?? 1) > 0) {
      faults.dropAfter.times = (faults.dropAfter.times ?? 1) - 1;
      dropAt = faults.dropAfter.bytes === 'random' ? Math.floor(this.random() * body.length) : Math.min(faults.dropAfter.bytes, body.length - 1);
    }
    this.pipe(res, body, dropAt, faults.throttleBytesPerSecond);
  }

  /** Writes the body in chunks, throttled if asked, destroying the socket at `dropAt`. */
  private pipe(res: ServerResponse, body: Uint8Array, dropAt: number, rate?: number): void {
    const chunk = rate ? Math.max(1, Math.floor(rate / 20)) : 64 * 1024;
    let at = 0;
    const step = () => {
      if (this.closed || res.destroyed) return;
      if (at >= dropAt) {
        res.socket?.destroy();
        return;
      }
      const end = Math.min(body.length, at + chunk, dropAt);
      const ok = res.write(body.subarray(at, end));
      const sent = end - at;
      at = end;
      if (at >= body.length) return void res.end();
      if (rate) {
        const t = setTimeout(() => {
          this.timers.delete(t);
          step();
        }, (sent / rate) * 1000);
        this.timers.add(t);
      } else if (ok) {
        setImmediate(step);
      } else {
        res.once('drain', step);
      }
    };
    step();
  }
}

const CORS = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Expose-Headers': 'Content-Range, ETag, Content-Length, Accept-Ranges, X-Linked-Etag, X-Error-Code',
};

function version(bytes: Uint8Array): Version {
  return { bytes, etag: `"${createHash('sha256').update(bytes).digest('hex').slice(0, 32)}"` };
}

/** The "changed" version of a file: a safetensors file with every F16 value negated (still valid); other files unchanged. */
function changedVersion(name: string, bytes: Uint8Array): Uint8Array {
  if (!name.endsWith('.safetensors')) return bytes;
  const out = bytes.slice();
  const n = Number(new DataView(out.buffer).getBigUint64(0, true));
  // High byte of each little-endian half carries the sign.
  for (let i = 8 + n + 1; i < out.length; i += 2) out[i] ^= 0x80;
  return out;
}
