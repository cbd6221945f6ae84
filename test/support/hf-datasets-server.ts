import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in for the Hub's dataset viewer API (datasets-server) on 127.0.0.1, for tests of the paged loader:
 * /rows and /filter with the real parameter checks and response shape, gated datasets, truncated cells,
 * scripted failures and a rate limiter that answers 429 with Retry-After.
 */

export interface FakeDataset {
  dataset: string;
  config: string;
  split: string;
  rows: Array<Record<string, unknown>>;
  /** Needs `Authorization: Bearer <token>` (401 without, like a gated dataset). */
  token?: string;
  /** String cells longer than this are cut and listed in truncated_cells, as the real API does for big rows. */
  maxCellChars?: number;
}

export interface ScriptedReply {
  status: number;
  /** Sent as the Retry-After header. */
  retryAfter?: string;
  /** Default: {"error": "..."} in the API's style. */
  body?: string;
  /** Drop the connection instead of answering (a network error for the client). */
  hangUp?: boolean;
}

export interface LoggedRequest {
  path: string;
  params: Record<string, string>;
  status: number;
  authorization?: string;
}

export interface HfDatasetsServer {
  baseUrl: string;
  requests: LoggedRequest[];
  /** Replies used, in order, before normal handling: push to script failures. */
  script: ScriptedReply[];
  /** Every n-th request (counting from 1) is answered 429 with this Retry-After, when set. */
  rateLimit: { every: number; retryAfter: string } | null;
  close(): Promise<void>;
}

export async function startHfDatasetsServer(datasets: FakeDataset[]): Promise<HfDatasetsServer> {
  const state: HfDatasetsServer = {
    baseUrl: '',
    requests: [],
    script: [],
    rateLimit: null,
    close: async () => {},
  };
  let count = 0;
  const server = createServer((req, res) => {
    count++;
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const params = Object.fromEntries(url.searchParams);
    const log = (status: number) =>
      state.requests.push({ path: url.pathname, params, status, authorization: req.headers.authorization ?? undefined });
    const scripted = state.script.shift();
    if (scripted?.hangUp) {
      log(0);
      req.socket.destroy();
      return;
    }
    if (scripted) {
      log(scripted.status);
      return reply(res, scripted.status, scripted.body ?? JSON.stringify({ error: `scripted ${scripted.status}` }), scripted.retryAfter);
    }
    if (state.rateLimit && count % state.rateLimit.every === 0) {
      log(429);
      return reply(res, 429, JSON.stringify({ error: 'Too Many Requests' }), state.rateLimit.retryAfter);
    }
    const [status, body] = handle(req, url, datasets);
    log(status);
    reply(res, status, JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = () =>
    new Promise<void>((resolve, reject) => {
      server.closeAllConnections();
      server.close((err) => (err ? reject(err) : resolve()));
    });
  return state;
}

function reply(res: ServerResponse, status: number, body: string, retryAfter?: string): void {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (retryAfter !== undefined) headers['retry-after'] = retryAfter;
  res.writeHead(status, headers);
  res.end(body);
}

function handle(req: IncomingMessage, url: URL, datasets: FakeDataset[]): [number, unknown] {
  if (req.method !== 'GET') return [405, { error: 'Method not allowed' }];
  if (url.pathname !== '/rows' && url.pathname !== '/filter') return [404, { error: 'Not Found' }];
  const p = url.searchParams;
  for (const name of ['dataset', 'config', 'split']) {
    if (!p.get(name)) return [422, { error: `Parameter '${name}' is required` }];
  }
  const offset = Number(p.get('offset') ?? '0');
  const length = Number(p.get('length') ?? '100');
  if (!Number.isInteger(offset) || offset < 0) return [422, { error: "Parameter 'offset' must be positive" }];
  if (!Number.isInteger(length) || length < 0) return [422, { error: "Parameter 'length' must be positive" }];
  if (length > 100) return [422, { error: "Parameter 'length' must not be greater than 100" }];
  const candidates = datasets.filter((d) => d.dataset === p.get('dataset'));
  if (candidates.length === 0) return [404, { error: 'The dataset does not exist, or is not accessible without authentication.' }];
  const gate = candidates[0].token;
  if (gate !== undefined && req.headers.authorization !== `Bearer ${gate}`) {
    return [401, { error: 'The dataset does not exist, or is not accessible without authentication.' }];
  }
  const d = candidates.find((c) => c.config === p.get('config') && c.split === p.get('split'));
  if (!d) return [404, { error: 'Not found.' }];

  let indexed = d.rows.map((row, rowIdx) => ({ row, rowIdx }));
  if (url.pathname === '/filter') {
    const where = p.get('where');
    if (!where) return [422, { error: "Parameter 'where' is required" }];
    const predicate = parseWhere(where);
    if (!predicate) return [400, { error: `Parameter 'where' is invalid: ${where}` }];
    indexed = indexed.filter((r) => predicate(r.row));
  }
  const features = Object.keys(d.rows[0] ?? {}).map((name, k) => ({ feature_idx: k, name, type: { dtype: 'string', _type: 'Value' } }));
  const rows = indexed.slice(offset, offset + length).map(({ row, rowIdx }) => {
    const truncated: string[] = [];
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(row)) {
      if (typeof v === 'string' && d.maxCellChars !== undefined && v.length > d.maxCellChars) {
        out[k] = v.slice(0, d.maxCellChars);
        truncated.push(k);
      } else out[k] = v;
    }
    return { row_idx: rowIdx, row: out, truncated_cells: truncated };
  });
  return [200, { features, rows, num_rows_total: indexed.length, num_rows_per_page: 100, partial: false }];
}

/** The subset of the API's SQL conditions the loader sends: `"col" OP 'value'` joined by AND. */
function parseWhere(where: string): ((row: Record<string, unknown>) => boolean) | null {
  const parts = where.split(/\s+AND\s+/);
  const tests: Array<(row: Record<string, unknown>) => boolean> = [];
  for (const part of parts) {
    const m = part.trim().match(/^"((?:[^"]|"")+)"\s*(>=|<=|<>|=|<|>)\s*'((?:[^']|'')*)'$/);
    if (!m) return null;
    const column = m[1].replace(/""/g, '"');
    const value = m[3].replace(/''/g, "'");
    const op = m[2];
    tests.push((row) => {
      const cell = String(row[column] ?? '');
      switch (op) {
        case '>=':
          return cell >= value;
        case '<=':
          return cell <= value;
        case '<>':
          return cell !== value;
        case '=':
          return cell === value;
        case '<':
          return cell < value;
        default:
          return cell > value;
      }
    });
  }
  return (row) => tests.every((t) => t(row));
}
