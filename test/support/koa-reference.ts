import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { buffer } from 'node:stream/consumers';
import Koa, { type ParameterizedContext } from 'koa';
import { type IdempotencyState, idempotency, type KoaIdempotencyOptions } from '../../src/adapters/koa.js';
import type { IdempotencyOptions } from '../../src/core/options.js';
import type { Started } from '../../src/testing/http-harness.js';
import type { ReferenceApp } from '../../src/testing/reference-app.js';

export type KoaApp = Koa<IdempotencyState>;

/**
 * The HTTP contract's start(): a real Koa app on 127.0.0.1, the middleware configured with
 * exactly `options` in front of everything, and one catch-all middleware that hands the request to
 * the contract's reference app.
 */
export function startKoaReference(setup: {
  app: ReferenceApp;
  options: IdempotencyOptions;
}): Promise<Started> {
  const app: KoaApp = new Koa();
  app.silent = true; // the reference app's POST /throw would print its stack on every run
  app.use(idempotency(setup.options as KoaIdempotencyOptions));
  app.use((ctx) => delegateToReference(ctx, setup.app));
  return serveKoa(app);
}

/**
 * Runs the reference app for one Koa request and answers through Koa's own idiom (ctx.status,
 * ctx.set/ctx.append, ctx.body), which is what the middleware captures at ctx.res once the chain
 * unwinds. The body is read from ctx.req after the middleware read it, so the contract also
 * checks that it was put back. A throw from the reference app (POST /throw) propagates the Koa
 * way: out of the middleware chain.
 */
export async function delegateToReference(
  ctx: ParameterizedContext<IdempotencyState>,
  app: ReferenceApp,
): Promise<void> {
  const hasBody = ctx.method !== 'GET' && ctx.method !== 'HEAD';
  const headers = new Headers();
  for (const [name, value] of Object.entries(ctx.req.headers)) {
    if (typeof value === 'string') headers.set(name, value);
    else if (value) for (const line of value) headers.append(name, line);
  }
  const request = new Request(`http://${ctx.host}${ctx.originalUrl}`, {
    method: ctx.method,
    headers,
    body: hasBody ? new Uint8Array(await buffer(ctx.req)) : null,
  });
  const idem = ctx.state.idempotency;
  const response = idem ? await app.fetch(request, idem) : await app.fetch(request);
  ctx.status = response.status;
  for (const [name, value] of response.headers) if (name !== 'set-cookie') ctx.set(name, value);
  for (const cookie of response.headers.getSetCookie()) ctx.append('set-cookie', cookie);
  ctx.body = response.body ? Buffer.from(await response.arrayBuffer()) : null;
}

/** Serves a Koa app on 127.0.0.1, port 0; close() ends open connections too. */
export async function serveKoa(app: Koa<IdempotencyState>): Promise<Started & { server: Server }> {
  const server = await new Promise<Server>((resolve, reject) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
    listening.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
