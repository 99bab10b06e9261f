import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { type Context, Hono } from 'hono';
import type { StatusCode } from 'hono/utils/http-status';
import { type IdempotencyVariables, idempotency } from '../../src/adapters/hono.js';
import type { IdempotencyOptions } from '../../src/core/options.js';
import type { Started } from '../../src/testing/http-harness.js';
import type { ReferenceApp } from '../../src/testing/reference-app.js';

export type HonoApp = Hono<{ Variables: IdempotencyVariables }>;

/**
 * The HTTP contract's start(): a real Hono app under @hono/node-server on 127.0.0.1, the
 * middleware configured with exactly `options` in front of every route, and one catch-all route
 * that hands the request to the contract's reference app.
 */
export function startHonoReference(setup: {
  app: ReferenceApp;
  options: IdempotencyOptions;
}): Promise<Started> {
  const hono: HonoApp = new Hono();
  hono.use('*', idempotency(setup.options));
  hono.all('*', (c) => delegateToReference(c, setup.app));
  return serveHono(hono);
}

/**
 * Runs the reference app for one Hono request and answers through Hono's own idiom (c.status,
 * c.header, c.body), which is what the middleware captures. The body comes from c.req after the
 * middleware read it, so the contract also checks that handlers can still read it. A throw from
 * the reference app (POST /throw) propagates the Hono way: compose → onError → c.error.
 */
export async function delegateToReference(
  c: Context<{ Variables: IdempotencyVariables }>,
  app: ReferenceApp,
): Promise<Response> {
  const hasBody = c.req.method !== 'GET' && c.req.method !== 'HEAD';
  const request = new Request(c.req.url, {
    method: c.req.method,
    headers: c.req.raw.headers,
    body: hasBody ? await c.req.arrayBuffer() : null,
  });
  const ctx = c.get('idempotency');
  const response = ctx ? await app.fetch(request, ctx) : await app.fetch(request);
  for (const [name, value] of response.headers) {
    if (name !== 'set-cookie') c.header(name, value);
  }
  for (const cookie of response.headers.getSetCookie()) c.header('set-cookie', cookie, { append: true });
  c.status(response.status as StatusCode);
  if (!response.body) return c.body(null);
  return c.body(new Uint8Array(await response.arrayBuffer()));
}

/** Serves a Hono app on 127.0.0.1, port 0; close() ends open connections too. */
export async function serveHono(app: {
  fetch: (request: Request) => Response | Promise<Response>;
}): Promise<Started> {
  const server = await new Promise<Server>((resolve, reject) => {
    const started = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () =>
      resolve(started as Server),
    ) as Server;
    started.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
