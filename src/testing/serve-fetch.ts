import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';

export interface ServedFetch {
  /** `http://127.0.0.1:<port>` */
  url: string;
  close(): Promise<void>;
}

/**
 * Serves a Web `Request → Response` handler on a real `node:http` socket, the way Node hosts
 * (Next.js, @hono/node-server) do. Used by the HTTP contract suite and the benchmarks, so the
 * fetch adapter is tested over real sockets. Loopback only by default.
 */
export async function serveFetch(
  handler: (request: Request) => Response | Promise<Response>,
  options: { host?: string; port?: number } = {},
): Promise<ServedFetch> {
  const host = options.host ?? '127.0.0.1';
  const server = createServer((req, res) => {
    void respond(handler, req, res, host);
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function respond(
  handler: (request: Request) => Response | Promise<Response>,
  req: IncomingMessage,
  res: ServerResponse,
  host: string,
): Promise<void> {
  let request: Request;
  try {
    request = toRequest(req, host);
  } catch {
    // Undici refuses header values Node's parser let through (e.g. bytes it cannot represent).
    res.writeHead(400, { 'content-type': 'text/plain', connection: 'close' }).end('bad request');
    return;
  }
  try {
    const response = await handler(request);
    const headers: Record<string, string | string[]> = {};
    response.headers.forEach((value, name) => {
      if (name !== 'set-cookie') headers[name] = value;
    });
    const cookies = response.headers.getSetCookie();
    if (cookies.length > 0) headers['set-cookie'] = cookies;
    const body = response.body ? Buffer.from(await response.arrayBuffer()) : undefined;
    if (body) headers['content-length'] = String(body.length);
    if (!req.complete) headers.connection = 'close';
    res.writeHead(response.status, headers).end(body);
  } catch {
    if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
    res.end('internal error');
  }
}

function toRequest(req: IncomingMessage, host: string): Request {
  const headers = new Headers();
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    headers.append(req.rawHeaders[i] as string, req.rawHeaders[i + 1] as string);
  }
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
  return new Request(`http://${req.headers.host ?? host}${req.url ?? '/'}`, {
    method: req.method ?? 'GET',
    headers,
    body: hasBody ? (Readable.toWeb(req) as ReadableStream<Uint8Array>) : null,
    // @ts-expect-error duplex is required by undici for streamed bodies but missing from lib.dom
    duplex: 'half',
  });
}
