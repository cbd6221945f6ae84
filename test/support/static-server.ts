import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
  '.jsonl': 'application/x-ndjson',
  '.wasm': 'application/wasm',
  '.map': 'application/json',
  '.png': 'image/png',
  '.webmanifest': 'application/manifest+json',
};

/** Where the browser posts reports of what the Content-Security-Policy refused. */
export const CSP_REPORT_PATH = '/__csp-report';

export interface StaticServer {
  url: string;
  /** Every CSP violation report the browser sent (page and worker), as posted. */
  cspReports: unknown[];
  close(): Promise<void>;
}

/**
 * The headers a build's `_headers` file gives every path (`/*`), as hosts that read the file send them:
 * the Content-Security-Policy among them, which then covers the worker as well as the page.
 */
function headersFile(root: string): Record<string, string> {
  const path = join(root, '_headers');
  if (!existsSync(path)) return {};
  const headers: Record<string, string> = {};
  let inAll = false;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    if (!/^\s/.test(line)) {
      inAll = line.trim() === '/*';
      continue;
    }
    const m = /^\s+([\w-]+):\s*(.*)$/.exec(line);
    if (inAll && m) headers[m[1]] = m[2];
  }
  return headers;
}

/**
 * Serves the built app (dist/) on 127.0.0.1 with an SPA fallback to index.html, with the headers of its
 * `_headers` file, and collects CSP violation reports. http://localhost is a secure context.
 */
export async function serveStatic(root: string): Promise<StaticServer> {
  const fixed = headersFile(root);
  if (fixed['Content-Security-Policy']) fixed['Content-Security-Policy'] += `; report-uri ${CSP_REPORT_PATH}`;
  const cspReports: unknown[] = [];
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    if (path === CSP_REPORT_PATH && req.method === 'POST') {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        try {
          cspReports.push(JSON.parse(body));
        } catch {
          cspReports.push(body);
        }
        res.writeHead(204).end();
      });
      return;
    }
    let file = normalize(join(root, path));
    if (!file.startsWith(root)) {
      res.writeHead(403).end();
      return;
    }
    if (!existsSync(file) || statSync(file).isDirectory()) file = join(root, 'index.html');
    res.writeHead(200, {
      ...fixed,
      'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream',
      'Content-Length': statSync(file).size,
      'Cache-Control': 'no-store',
    });
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://localhost:${port}`,
    cspReports,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
