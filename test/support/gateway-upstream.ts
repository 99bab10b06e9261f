import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startGateway } from '../../src/gateway/server.js';
import type { GatewayConfig } from '../../src/gateway/types.js';
import { memoryStore } from '../../src/index.js';
import { loopbackGatewayConfig } from './gateway-start.js';

export interface SeenRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * An upstream that records every request it received in full (`seen`), counts every request
 * that reached it at all (`started`) and those cut off before their body was complete
 * (`abandoned`), and answers as the test says.
 */
export async function recordingUpstream(
  answer: (path: string) => { status: number; headers?: Record<string, string>; delayMs?: number } = () => ({
    status: 201,
  }),
) {
  const seen: SeenRequest[] = [];
  let started = 0;
  let abandoned = 0;
  const server: Server = createServer((req, res) => {
    started++;
    req.once('close', () => {
      if (!req.complete) abandoned++;
    });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      });
      const a = answer(req.url ?? '');
      setTimeout(
        () => res.writeHead(a.status, { 'content-type': 'text/plain', ...a.headers }).end(`n=${seen.length}`),
        a.delayMs ?? 0,
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    started: () => started,
    /** Requests whose connection closed before their body was complete: the gateway let go of them. */
    abandoned: () => abandoned,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** An in-process gateway on ephemeral main and admin ports with a memory store. */
export function gatewayFor(
  upstream: string,
  config: Partial<GatewayConfig> = {},
  store = memoryStore({ onWarning() {} }),
) {
  return startGateway({
    config: loopbackGatewayConfig(upstream, config),
    store,
    engine: { onWarning() {} },
  });
}
