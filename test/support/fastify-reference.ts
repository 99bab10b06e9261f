import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import idempotency, { type FastifyIdempotencyOptions } from '../../src/adapters/fastify.js';
import type { Started } from '../../src/testing/index.js';
import type { ReferenceApp } from '../../src/testing/reference-app.js';

/**
 * A real Fastify 5 server on 127.0.0.1 whose every route delegates to the contract's reference
 * app. The reply is written the Fastify way — `reply.code()`, `reply.header()` (set-cookie as an
 * array), `reply.send(bytes)` — so what the adapter captures is Fastify's own reply; a reference
 * app that throws makes the async route reject. `options: undefined` starts the same app
 * without idemkit (a negative control).
 */
export async function startFastifyReference(
  app: ReferenceApp,
  options: FastifyIdempotencyOptions | undefined,
  configure?: (server: FastifyInstance) => void,
): Promise<Started & { server: FastifyInstance }> {
  const server = Fastify({ logger: false, forceCloseConnections: true });
  // The reference app reads the body itself: give it the bytes as sent, whatever the type.
  server.removeAllContentTypeParsers();
  server.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  if (options) await server.register(idempotency, options);
  configure?.(server);
  server.all('*', async function referenceRoute(request: FastifyRequest, reply: FastifyReply) {
    const response = await app.fetch(toWebRequest(request), request.idempotency);
    reply.code(response.status);
    response.headers.forEach((value, name) => {
      if (name !== 'set-cookie') reply.header(name, value);
    });
    const cookies = response.headers.getSetCookie();
    if (cookies.length > 0) reply.header('set-cookie', cookies);
    const bytes = Buffer.from(await response.arrayBuffer());
    return reply.send(bytes);
  });
  await server.listen({ port: 0, host: '127.0.0.1' });
  const { port } = server.server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, server, close: () => server.close() };
}

function toWebRequest(request: FastifyRequest): Request {
  const headers = new Headers();
  const raw = request.raw.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i] as string, raw[i + 1] as string);
  const hasBody = request.method !== 'GET' && request.method !== 'HEAD';
  const body = hasBody && Buffer.isBuffer(request.body) ? (request.body as Uint8Array<ArrayBuffer>) : null;
  return new Request(`http://127.0.0.1${request.url}`, { method: request.method, headers, body });
}
