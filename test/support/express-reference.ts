import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
// @ts-expect-error express5 is Express 5 installed under an alias, without types of its own
import untypedExpress5 from 'express5';
import { idempotency, idempotencyErrors, keepRawBody, rawBodyOf } from '../../src/adapters/express.js';
import type { IdempotencyOptions } from '../../src/core/options.js';
import type { Started } from '../../src/testing/http-harness.js';
import type { ReferenceApp } from '../../src/testing/reference-app.js';

/** Express 5 seen through the Express 4 types: the API the tests use is the same in both. */
export const express5 = untypedExpress5 as typeof express;

export type ExpressMajor = 4 | 5;

export function expressOf(major: ExpressMajor): typeof express {
  return major === 5 ? express5 : express;
}

/**
 * The HTTP contract's start() for one variant: a real Express app on 127.0.0.1 with the
 * middleware configured with exactly `options` in front of one catch-all handler that hands the
 * request to the contract's reference app, and what the docs tell users to add:
 * `idempotencyErrors()` after the routes, and with `parser`, `express.json({ verify: keepRawBody })`
 * in front of the middleware.
 */
export function expressReference(variant: { major: ExpressMajor; parser: boolean }) {
  return function startExpressReference(setup: {
    app: ReferenceApp;
    options: IdempotencyOptions;
  }): Promise<Started> {
    const framework = expressOf(variant.major);
    const app = framework();
    quiet(app);
    if (variant.parser) app.use(framework.json({ verify: keepRawBody }));
    app.use(idempotency(setup.options));
    app.use(variant.major === 5 ? delegateAsync(setup.app) : delegateWithNext(setup.app));
    app.use(idempotencyErrors());
    return listen(app);
  };
}

/**
 * `x-powered-by` off (a hardening most apps apply; Express would otherwise add it to replays like
 * any other answer), and env `test` so Express does not print the thrown test errors.
 */
export function quiet(app: Express): void {
  app.disable('x-powered-by');
  app.set('env', 'test');
}

/** Express 5's way: the route returns a promise, and a rejection goes to the error handlers. */
function delegateAsync(reference: ReferenceApp) {
  return function referenceRoute(req: Request, res: Response): Promise<void> {
    return delegateToReference(req, res, reference);
  };
}

/** Express 4's way: an async failure is handed to `next(err)`. */
function delegateWithNext(reference: ReferenceApp) {
  return function referenceRoute(req: Request, res: Response, next: NextFunction): void {
    delegateToReference(req, res, reference).catch(next);
  };
}

/** Headers that describe this hop; the rest are copied onto the Web request. */
const HOP = new Set(['host', 'connection', 'keep-alive', 'content-length', 'transfer-encoding']);

/**
 * Runs the reference app for one Express request and answers through Express's own idiom
 * (res.status, res.setHeader, res.send), which is what the middleware captures. The body is read
 * from the stream when no parser consumed it, so the contract also checks that the middleware
 * put it back.
 */
export async function delegateToReference(
  req: Request,
  res: Response,
  reference: ReferenceApp,
): Promise<void> {
  const headers = new Headers();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i] as string;
    if (!HOP.has(name.toLowerCase())) headers.append(name, req.rawHeaders[i + 1] as string);
  }
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
  const request = new Request(`http://${req.headers.host}${req.originalUrl}`, {
    method: req.method,
    headers,
    body: hasBody ? await bodyOf(req) : null,
  });
  const ctx = req.idempotency;
  const response = ctx ? await reference.fetch(request, ctx) : await reference.fetch(request);
  res.status(response.status);
  for (const [name, value] of response.headers) if (name !== 'set-cookie') res.setHeader(name, value);
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) res.setHeader('set-cookie', cookies);
  if (!response.body) {
    res.end();
    return;
  }
  res.send(Buffer.from(await response.arrayBuffer()));
}

async function bodyOf(req: Request): Promise<Uint8Array<ArrayBuffer>> {
  const consumed = req.readableEnded || (req as { _body?: boolean })._body === true;
  if (consumed) return new Uint8Array(rawBodyOf(req) ?? new Uint8Array(0));
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return new Uint8Array(Buffer.concat(chunks));
}

/** Listens on 127.0.0.1, port 0; close() ends open connections too. */
export async function listen(app: Express): Promise<Started> {
  const server = await new Promise<Server>((resolve, reject) => {
    const started = app.listen(0, '127.0.0.1', () => resolve(started));
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
