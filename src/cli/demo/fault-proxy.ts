import { Agent, createServer, type IncomingHttpHeaders, request } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * The network between the client and the server, as it fails in production: the request
 * arrives, the server acts (charges the card), and the response is lost on its way back. The
 * proxy forwards every request and reads the whole response first, so each injected fault
 * happens strictly after the server did the work:
 *
 * - `drop`: the connection is closed without an answer (a reset, a crashed load balancer);
 * - `hang`: nothing comes back, until the client's own timeout gives up;
 * - `truncate`: the headers and half the body arrive, then the connection dies.
 */
export type FaultKind = 'drop' | 'hang' | 'truncate';

export interface FaultProxyOptions {
  /** Where requests go, e.g. the API or the gateway. */
  target: string;
  /** Share of responses lost, 0–1. */
  faultRate: number;
  /** @default ['drop', 'hang', 'truncate'] */
  kinds?: readonly FaultKind[];
  /** @default Math.random */
  random?: () => number;
}

export interface FaultProxy {
  url: string;
  /** Responses lost so far, by kind. */
  readonly faults: Readonly<Record<FaultKind, number>>;
  readonly forwarded: number;
  close(): Promise<void>;
}

const HOP_BY_HOP = ['connection', 'keep-alive', 'transfer-encoding', 'te', 'upgrade', 'trailer', 'host'];

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(options.target);
  const kinds = options.kinds ?? ['drop', 'hang', 'truncate'];
  const random = options.random ?? Math.random;
  const faults: Record<FaultKind, number> = { drop: 0, hang: 0, truncate: 0 };
  let forwarded = 0;
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const hanging = new Set<Socket>();

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const upstream = request(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.url,
          headers: { ...strip(req.headers), host: target.host, 'content-length': String(body.length) },
          agent,
        },
        (upstreamRes) => {
          const parts: Buffer[] = [];
          upstreamRes.on('data', (chunk: Buffer) => parts.push(chunk));
          upstreamRes.on('end', () => {
            forwarded++;
            const payload = Buffer.concat(parts);
            const headers = { ...strip(upstreamRes.headers), 'content-length': String(payload.length) };
            const kind =
              random() < options.faultRate ? kinds[Math.floor(random() * kinds.length)] : undefined;
            if (kind !== undefined) faults[kind]++;
            if (kind === 'drop') {
              req.socket.destroy();
            } else if (kind === 'hang') {
              // Held until the client times out and closes; close() ends the ones still held.
              hanging.add(req.socket);
              req.socket.once('close', () => hanging.delete(req.socket));
            } else if (kind === 'truncate') {
              res.writeHead(upstreamRes.statusCode ?? 502, headers);
              res.write(payload.subarray(0, Math.floor(payload.length / 2)), () => req.socket.destroy());
            } else {
              res.writeHead(upstreamRes.statusCode ?? 502, headers).end(payload);
            }
          });
        },
      );
      upstream.on('error', () => {
        if (!res.headersSent)
          res.writeHead(502, { 'content-type': 'text/plain' }).end('fault proxy: upstream failed');
      });
      upstream.end(body);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    faults,
    get forwarded() {
      return forwarded;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of hanging) socket.destroy();
        server.closeAllConnections();
        agent.destroy();
      }),
  };
}

function strip(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.includes(name)) out[name] = value;
  }
  return out;
}
