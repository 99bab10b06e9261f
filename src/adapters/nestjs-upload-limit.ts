import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Idempotency } from '../core/engine.js';
import { problemResponse } from '../core/problem.js';
import { readAndKeep } from './nestjs-body.js';
import { sendEngineResponse } from './node-http.js';

/** Nest's Express adapter, as far as its request hook goes. */
interface ExpressAdapterLike {
  getType?: () => string;
  setOnRequestHook?: (hook: RequestHook) => void;
  /** The hook set before ours, if any: it still runs, after ours. */
  onRequestHook?: RequestHook;
}

type RequestHook = (req: IncomingMessage, res: ServerResponse, done: (error?: unknown) => void) => unknown;

/**
 * On Express, Nest's body parser runs before any interceptor, and body-parser reads a refused
 * upload to its end before it answers 413: a client sending a gigabyte keeps the connection busy
 * until the last byte. So the module puts a hook in front of the parser (Nest's own
 * `setOnRequestHook`, which runs before every middleware) that refuses a keyed upload over
 * `maxBodyBytes` at once, with idemkit's 413 problem and before any store call: by its declared
 * length, or for a chunked body by reading it within the limit (then put back for the parser).
 * Requests without the key header, and other methods, pass untouched. Fastify refuses an
 * upload over its `bodyLimit` early by itself.
 */
export function limitKeyedUploads(adapter: unknown, engine: Pick<Idempotency, 'options'>): void {
  const express = adapter as ExpressAdapterLike;
  if (express?.getType?.() !== 'express' || typeof express.setOnRequestHook !== 'function') return;
  const previous = express.onRequestHook;
  const { methods, keyHeader, maxBodyBytes } = engine.options;

  function proceed(self: unknown, req: IncomingMessage, res: ServerResponse, done: (e?: unknown) => void) {
    return previous ? previous.call(self, req, res, done) : done();
  }

  express.setOnRequestHook(function idempotencyUploadLimit(this: unknown, req, res, done) {
    const keyed = methods.has(req.method ?? '') && req.headers[keyHeader] !== undefined;
    const declared = req.headers['content-length'];
    if (!keyed || (declared === undefined && req.headers['transfer-encoding'] === undefined)) {
      return proceed(this, req, res, done);
    }
    if (declared !== undefined) {
      if (Number(declared) > maxBodyBytes) return refuse(res);
      return proceed(this, req, res, done);
    }
    return Promise.resolve(readAndKeep({}, req, maxBodyBytes)).then(
      (body) => (body === undefined ? refuse(res) : proceed(this, req, res, done)),
      done,
    );
  });
}

/** The connection closes after the answer, so the rest of the upload is never read. */
function refuse(res: ServerResponse): void {
  sendEngineResponse(res, problemResponse('payload-too-large'), true);
}
