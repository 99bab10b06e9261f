import { IncomingMessage, type ServerResponse } from 'node:http';
import type { HandlerContext } from '../core/decision.js';
import { captureOf } from './node-http-capture.js';

interface ContextHolder {
  idempotency?: HandlerContext | undefined;
  res?: unknown;
}

/**
 * Gives a request under a claim its `req.idempotency`. Express gives each request a hidden class
 * of its own (it swaps the prototype to the app's `app.request`), so an own property would copy
 * that class on every executed request. Where the request is Express's (its own prototype, and
 * `req.res` is the response being captured), `idempotency` is instead an accessor defined once
 * on that prototype, reading the context from the response's capture; mounted sub-apps inherit
 * it. Anywhere else (Fastify's requests under NestJS, a plain `IncomingMessage`) it is an own
 * property, as before. Node's `IncomingMessage.prototype` is never touched.
 */
export function exposeContext(req: object, res: ServerResponse, ctx: HandlerContext): void {
  const holder = req as ContextHolder;
  const proto = Object.getPrototypeOf(req) as object | null;
  if (
    proto === null ||
    proto === IncomingMessage.prototype ||
    holder.res !== res ||
    Object.hasOwn(req, 'idempotency')
  ) {
    holder.idempotency = ctx;
    return;
  }
  if (!WITH_ACCESSOR.has(proto)) defineAccessor(proto);
}

/** Request prototypes whose `idempotency` reads the capture of the request's response. */
const WITH_ACCESSOR = new WeakSet<object>();

function defineAccessor(proto: object): void {
  WITH_ACCESSOR.add(proto);
  Object.defineProperty(proto, 'idempotency', {
    configurable: true,
    enumerable: false,
    get(this: ContextHolder): HandlerContext | undefined {
      return this.res ? captureOf(this.res as ServerResponse)?.context : undefined;
    },
    // Assigned by the app itself (a test, another middleware): an own property then, as before.
    set(this: ContextHolder, value: HandlerContext | undefined) {
      Object.defineProperty(this, 'idempotency', {
        value,
        writable: true,
        configurable: true,
        enumerable: true,
      });
    },
  });
}
