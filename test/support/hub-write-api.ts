/**
 * The write side of the stand-in Hub (hub-server.ts): the calls @huggingface/hub makes to publish a
 * model repository, answered the way the Hub answers them.
 *
 *   GET  /api/whoami-v2                                   the token's user (401 without a known token)
 *   POST /api/repos/create                                {name, organization, type, visibility}: 200, 409 if
 *                                                         it exists, 403 for a read token or another namespace
 *   POST /api/models/{repo}/preupload/{rev}               which files go through LFS ({files: [{path, uploadMode}]})
 *   POST /{repo}.git/info/lfs/objects/batch               Git LFS batch API (basic transfer): upload URLs
 *   PUT  /lfs-upload/{oid}                                the object; its SHA-256 and size are checked
 *   POST /api/models/{repo}/commit/{rev}                  NDJSON: header, file (base64), lfsFile (oid) lines
 *
 * Committed files are then served by the read side like any other repository (private ones only with
 * a token). Every call is checked strictly (methods, content types, JSON shapes, hashes), so a client
 * that sends something else fails here as it would on the Hub.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export interface HubUser {
  name: string;
  /** A read token may not create repositories or commit. */
  role: 'read' | 'write';
}

export interface CreatedRepo {
  private: boolean;
  files: Map<string, Uint8Array>;
}

export interface CommitRecord {
  repo: string;
  summary: string;
  files: string[];
  lfsFiles: string[];
}

/** Large or binary files go through LFS, as the Hub's default .gitattributes and size limit decide. */
const LFS_EXTENSIONS = /\.(safetensors|bin|gguf|zip|pt|onnx)$/;
const LFS_MIN_BYTES = 10 * 2 ** 20;

export class HubWriteApi {
  readonly repos = new Map<string, CreatedRepo>();
  readonly commits: CommitRecord[] = [];
  private readonly lfs = new Map<string, Uint8Array>();

  constructor(
    private readonly tokens: Record<string, HubUser>,
    private readonly baseUrl: () => string,
  ) {}

  /** The user a request's bearer token belongs to, or null. */
  user(req: IncomingMessage): HubUser | null {
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    return m ? (this.tokens[m[1]] ?? null) : null;
  }

  /** Answers the request if it is one of the write calls (true), else leaves it to the read side (false). */
  handle(req: IncomingMessage, send: Send): boolean {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const method = req.method ?? '';
    const route = (pattern: RegExp, wanted: string): string[] | null => {
      const m = method === wanted ? pattern.exec(path) : null;
      return m ? m.slice(1).map(decodeURIComponent) : null;
    };
    let m: string[] | null;
    if ((m = route(/^\/api\/whoami-v2$/, 'GET'))) {
      const user = this.user(req);
      if (!user) json(send, 401, { error: 'Invalid credentials in Authorization header' });
      else json(send, 200, { type: 'user', name: user.name, fullname: user.name, orgs: [], auth: { type: 'access_token', accessToken: { displayName: 'test', role: user.role } } });
    } else if ((m = route(/^\/api\/repos\/create$/, 'POST'))) {
      this.withBody(req, send, (body) => this.create(req, body, send));
    } else if ((m = route(/^\/api\/models\/([^/]+\/[^/]+)\/preupload\/([^/]+)$/, 'POST'))) {
      const [repo] = m;
      this.withBody(req, send, (body) => this.preupload(req, repo, body, send));
    } else if ((m = route(/^\/([^/]+\/[^/]+)\.git\/info\/lfs\/objects\/batch$/, 'POST'))) {
      const [repo] = m;
      this.withBody(req, send, (body) => this.lfsBatch(req, repo, body, send));
    } else if ((m = route(/^\/lfs-upload\/([0-9a-f]{64})$/, 'PUT'))) {
      const [oid] = m;
      this.withBody(req, send, (body) => this.lfsPut(oid, body, send));
    } else if ((m = route(/^\/api\/models\/([^/]+\/[^/]+)\/commit\/([^/]+)$/, 'POST'))) {
      const [repo, branch] = m;
      this.withBody(req, send, (body) => this.commit(req, repo, branch, body, send));
    } else return false;
    return true;
  }

  private withBody(req: IncomingMessage, send: Send, then: (body: Buffer) => void): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        then(Buffer.concat(chunks));
      } catch (err) {
        json(send, 400, { error: `bad request: ${(err as Error).message}` });
      }
    });
  }

  /** The writable repository a request may commit to, or an error already sent. */
  private writable(req: IncomingMessage, repo: string, send: Send): CreatedRepo | null {
    const user = this.user(req);
    const target = this.repos.get(repo);
    if (!user) json(send, 401, { error: 'Invalid credentials in Authorization header' });
    else if (!target) json(send, 404, { error: 'Repository not found' });
    else if (user.role !== 'write' || repo.split('/')[0] !== user.name) json(send, 403, { error: `You don't have the rights to write to ${repo}` });
    else return target;
    return null;
  }

  private create(req: IncomingMessage, body: Buffer, send: Send): void {
    const user = this.user(req);
    if (!user) return json(send, 401, { error: 'Invalid credentials in Authorization header' });
    const request = JSON.parse(body.toString('utf8')) as { name?: unknown; organization?: unknown; type?: unknown; visibility?: unknown };
    if (typeof request.name !== 'string' || typeof request.organization !== 'string') throw new Error('name and organization must be strings');
    if (request.type !== 'model') throw new Error(`type must be "model", got ${JSON.stringify(request.type)}`);
    if (request.visibility !== undefined && request.visibility !== 'public' && request.visibility !== 'private') throw new Error('visibility must be public or private');
    const repo = `${request.organization}/${request.name}`;
    if (user.role !== 'write' || request.organization !== user.name) {
      return json(send, 403, { error: `You don't have the rights to create a model under the namespace "${request.organization}"` });
    }
    if (this.repos.has(repo)) return json(send, 409, { error: 'You already created this model repo', url: `${this.baseUrl()}/${repo}` });
    this.repos.set(repo, { private: request.visibility === 'private', files: new Map() });
    json(send, 200, { url: `${this.baseUrl()}/${repo}`, name: repo, id: `id-${this.repos.size}` });
  }

  private preupload(req: IncomingMessage, repo: string, body: Buffer, send: Send): void {
    if (!this.writable(req, repo, send)) return;
    const request = JSON.parse(body.toString('utf8')) as { files?: Array<{ path: string; size: number; sample: string }> };
    if (!Array.isArray(request.files)) throw new Error('files must be an array');
    const files = request.files.map((f) => {
      if (typeof f.path !== 'string' || !Number.isInteger(f.size) || typeof f.sample !== 'string') throw new Error('each file needs path, size and a base64 sample');
      if (Buffer.from(f.sample, 'base64').length > Math.min(512, f.size)) throw new Error(`the sample of ${f.path} is longer than 512 bytes or the file`);
      return { path: f.path, uploadMode: LFS_EXTENSIONS.test(f.path) || f.size >= LFS_MIN_BYTES ? 'lfs' : 'regular', shouldIgnore: false };
    });
    json(send, 200, { files });
  }

  private lfsBatch(req: IncomingMessage, repo: string, body: Buffer, send: Send): void {
    if (!this.writable(req, repo, send)) return;
    if (!String(req.headers['content-type']).startsWith('application/vnd.git-lfs+json')) throw new Error('the LFS batch API takes application/vnd.git-lfs+json');
    const request = JSON.parse(body.toString('utf8')) as { operation?: string; transfers?: string[]; objects?: Array<{ oid: string; size: number }> };
    if (request.operation !== 'upload' || !request.transfers?.includes('basic') || !Array.isArray(request.objects)) throw new Error('expected an upload batch offering the basic transfer');
    const objects = request.objects.map(({ oid, size }) => {
      if (!/^[0-9a-f]{64}$/.test(oid)) throw new Error(`${oid} is not a SHA-256`);
      const stored = this.lfs.get(oid);
      if (stored && stored.length === size) return { oid, size };
      return { oid, size, authenticated: true, actions: { upload: { href: `${this.baseUrl()}/lfs-upload/${oid}`, expires_in: 3600 } } };
    });
    send(200, { 'Content-Type': 'application/vnd.git-lfs+json' }, JSON.stringify({ transfer: 'basic', objects }));
  }

  private lfsPut(oid: string, body: Buffer, send: Send): void {
    const sha = createHash('sha256').update(body).digest('hex');
    if (sha !== oid) return json(send, 400, { error: `the object's SHA-256 is ${sha}, not ${oid}` });
    this.lfs.set(oid, new Uint8Array(body));
    send(200, { ETag: `"${oid.slice(0, 32)}"` });
  }

  private commit(req: IncomingMessage, repo: string, branch: string, body: Buffer, send: Send): void {
    const target = this.writable(req, repo, send);
    if (!target) return;
    if (!String(req.headers['content-type']).startsWith('application/x-ndjson')) throw new Error('the commit API takes application/x-ndjson');
    if (branch !== 'main') throw new Error(`only main exists here, not ${branch}`);
    const lines = body.toString('utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { key: string; value: Record<string, unknown> });
    if (lines[0]?.key !== 'header' || typeof lines[0].value.summary !== 'string') throw new Error('the first line must be the header with a summary');
    const record: CommitRecord = { repo, summary: lines[0].value.summary, files: [], lfsFiles: [] };
    const next = new Map(target.files);
    for (const { key, value } of lines.slice(1)) {
      const path = value.path as string;
      if (typeof path !== 'string' || !path || path.startsWith('/') || path.split('/').includes('..')) throw new Error(`bad path ${JSON.stringify(path)}`);
      if (key === 'file') {
        if (value.encoding !== 'base64' || typeof value.content !== 'string') throw new Error(`${path}: file lines carry base64 content`);
        next.set(path, new Uint8Array(Buffer.from(value.content, 'base64')));
        record.files.push(path);
      } else if (key === 'lfsFile') {
        const bytes = this.lfs.get(value.oid as string);
        if (value.algo !== 'sha256' || !bytes) return json(send, 422, { error: `${path}: LFS object ${value.oid} was never uploaded` });
        if (bytes.length !== value.size) return json(send, 422, { error: `${path}: LFS object is ${bytes.length} bytes, not ${value.size}` });
        next.set(path, bytes);
        record.lfsFiles.push(path);
      } else throw new Error(`unknown commit line ${key}`);
    }
    target.files = next;
    this.commits.push(record);
    const oid = createHash('sha1').update(`${repo}:${this.commits.length}`).digest('hex');
    json(send, 200, { success: true, commitOid: oid, commitUrl: `${this.baseUrl()}/${repo}/commit/${oid}` });
  }
}

export type Send = (status: number, headers?: Record<string, string>, body?: string) => void;

function json(send: Send, status: number, value: unknown): void {
  send(status, { 'Content-Type': 'application/json' }, JSON.stringify(value));
}
