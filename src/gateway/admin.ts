import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { listen } from './listener.js';

export interface AdminEndpoints {
  /** Prometheus text and its content type. */
  metrics(): Promise<{ contentType: string; body: string }>;
  /** The store's health: `ok` answers 200, anything else 503. */
  health(): Promise<{ ok: boolean; body: object }>;
}

export interface AdminListener {
  /** `http://host:port` */
  url: string;
  close(): Promise<void>;
}

/**
 * Health and metrics on their own listener (loopback by default), so the API's clients cannot
 * read them and no spelling of an upstream path can reach them. Exact paths, GET and HEAD only.
 */
export async function startAdminListener(
  host: string,
  port: number,
  endpoints: AdminEndpoints,
): Promise<AdminListener> {
  const server = createServer((req, res) => {
    answer(req, res, endpoints).catch(() => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('admin endpoint failed');
    });
  });
  // Admin clients are probes and scrapers: a short leash on slow or idle ones.
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  const url = await listen(server, port, host);
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function answer(req: IncomingMessage, res: ServerResponse, endpoints: AdminEndpoints): Promise<void> {
  const path = (req.url ?? '').split('?')[0];
  const isMetrics = path === '/_idemkit/metrics';
  if (!isMetrics && path !== '/_idemkit/health') return text(res, 404, 'not found');
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    return text(res, 405, 'method not allowed');
  }
  const headOnly = req.method === 'HEAD';
  if (isMetrics) {
    const { contentType, body } = await endpoints.metrics();
    res.writeHead(200, {
      'content-type': contentType,
      'cache-control': 'no-store',
      'content-length': Buffer.byteLength(body),
    });
    res.end(headOnly ? undefined : body);
    return;
  }
  const { ok, body } = await endpoints.health();
  const json = JSON.stringify(body);
  res.writeHead(ok ? 200 : 503, {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(json),
  });
  res.end(headOnly ? undefined : json);
}

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
