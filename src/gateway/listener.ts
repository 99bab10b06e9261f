import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { ProblemCode } from '../core/errors.js';
import { problemResponse } from '../core/problem.js';
import type { GatewayConfig } from './types.js';

type Timeouts = Pick<GatewayConfig, 'headerTimeoutMs' | 'requestTimeoutMs' | 'idleTimeoutMs'>;

/**
 * The gateway's main HTTP server with its own bounds on slow clients: headers, the whole request
 * and idle keep-alive connections each have a timeout, so a client that trickles bytes cannot hold
 * a socket here (or, on pass-through routes, a socket to the upstream) for Node's defaults of
 * 60 s / 300 s. What Node's parser refuses (smuggling attempts, broken framing) and timed-out
 * requests are answered with problem+json and the connection is closed; CONNECT is refused.
 */
export function createGatewayServer(
  timeouts: Timeouts,
  onRequest: (req: IncomingMessage, res: ServerResponse) => void,
  /** Called once per request when its response closes (one close listener serves both). */
  onClosed: () => void = () => {},
): Server {
  // Node rejects a header timeout longer than the request timeout; the headers are part of it.
  const headersTimeout = Math.min(timeouts.headerTimeoutMs, timeouts.requestTimeoutMs);
  const server = createServer(
    {
      headersTimeout,
      requestTimeout: timeouts.requestTimeoutMs,
      keepAliveTimeout: timeouts.idleTimeoutMs,
      // Node checks the two request timeouts on this interval (30 s by default): keep it well under them.
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(headersTimeout / 4))),
    },
    (req, res) => {
      const socket = req.socket;
      const exchange = { req, res };
      inProgress.set(socket, exchange);
      res.once('close', () => {
        if (inProgress.get(socket) === exchange) inProgress.delete(socket);
        onClosed();
      });
      onRequest(req, res);
    },
  );
  const inProgress = new WeakMap<Socket, { req: IncomingMessage; res: ServerResponse }>();

  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    const code = problemFor(error.code);
    const active = inProgress.get(socket);
    // The handler may be streaming this body upstream: end that request too, or it pins an upstream socket.
    const abandon = () => active?.req.destroy(error);
    // Mid-response there is no clean way to answer: just cut the connection.
    if (code === undefined || !socket.writable || active?.res.headersSent) {
      abandon();
      return socket.destroy();
    }
    if (active) answerOn(active.res, code, abandon);
    else answerAndClose(socket, code);
  });
  // A reverse proxy is no tunnel: CONNECT would otherwise reach nothing and hang or be dropped.
  server.on('connect', (_req: IncomingMessage, socket: Socket) => answerAndClose(socket, 'invalid-path'));
  return server;
}

function problemFor(code: string | undefined): ProblemCode | undefined {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return 'request-timeout';
  if (code === 'HPE_HEADER_OVERFLOW') return 'headers-too-large';
  if (code?.startsWith('HPE_')) return 'malformed-request';
  return undefined; // ECONNRESET and the like: the client is gone.
}

/** Answers through the request's own response (its handler is running), then calls `done`. */
function answerOn(res: ServerResponse, code: ProblemCode, done: () => void): void {
  const { status, headers, body } = problemResponse(code);
  res.shouldKeepAlive = false;
  for (const [name, value] of headers) res.setHeader(name, value);
  res.setHeader('content-length', body.byteLength);
  res.writeHead(status);
  res.end(body, done);
}

function answerAndClose(socket: Socket, code: ProblemCode): void {
  const { status, headers, body } = problemResponse(code);
  const lines = [`HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}`, 'connection: close'];
  for (const [name, value] of headers) lines.push(`${name}: ${value}`);
  lines.push(`content-length: ${body.byteLength}`);
  socket.end(Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), body]));
  // end() lets the answer reach a client that is still sending; a client that never reads is cut.
  setTimeout(() => socket.destroy(), 1_000).unref();
}

const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
};

/** Listens and returns `http://host:port` (IPv6 hosts bracketed). */
export async function listen(server: Server, port: number, host: string): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  return `http://${host.includes(':') ? `[${host}]` : host}:${bound}`;
}
