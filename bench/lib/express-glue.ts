/**
 * The idemkit engine glued into Express by hand, the way an app without an `idemkit/express`
 * adapter would do it: `express.raw()` reads the body, `begin()` decides, a reject or a replay is
 * answered from the decision, and on `execute` the app's own handler runs with `res.end`
 * intercepted, so its response is committed (persisted) before it is sent.
 */
import type { Express, NextFunction, Request, RequestHandler, Response } from 'express';
import type { Idempotency } from '../../src/core/engine.js';
import type { ExecuteDecision } from '../../src/core/execution.js';
import type { problemResponse as ProblemResponse } from '../../src/core/problem.js';
import type { EngineResponse } from '../../src/core/response.js';

type Handler = (req: Request, res: Response) => void | Promise<void>;

/** Where a running execution waits for the handler's answer: `res.locals`, not a new property on `res`. */
const EXECUTION = Symbol('idemkit.execution');
type Locals = Record<symbol, ExecuteDecision | undefined>;
const patched = new WeakSet<object>();

/**
 * A route handler: `app.post(path, express.raw({ type: () => true, limit }), idempotent(app, ...))`.
 * The body reaches `handler` as `express.json()` would hand it over (parsed when it is JSON).
 * `problem`: idemkit's problem renderer, from the tree being measured.
 */
export function idempotent(
  app: Express,
  idem: Idempotency,
  problem: typeof ProblemResponse,
  handler: Handler,
): RequestHandler {
  captureResponses(app);
  return (req: Request, res: Response, next: NextFunction) => {
    const raw: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    // As express.json() in front would: a body that is not JSON is refused before any claim.
    if (isJson(req.headers['content-type'])) {
      try {
        req.body = raw.length === 0 ? {} : JSON.parse(raw.toString('utf8'));
      } catch {
        send(res, problem('malformed-request', 'the request body is not valid JSON'));
        return;
      }
    }
    const queryAt = req.originalUrl.indexOf('?');
    idem
      .begin({
        method: req.method,
        path: req.path,
        query: queryAt < 0 ? '' : req.originalUrl.slice(queryAt + 1),
        headers: req.headers,
        body: raw,
        native: req,
      })
      .then((decision) => {
        switch (decision.kind) {
          case 'bypass':
            return handler(req, res);
          case 'reject':
          case 'replay':
            send(res, decision.response);
            return;
          case 'execute':
            return execute(decision, handler, req, res);
          default:
            return decision satisfies never;
        }
      })
      .catch(next);
  };
}

/**
 * Runs the handler under the claim; `res.end` (below) commits its answer. A handler that throws
 * (or rejects) before answering aborts the execution, which frees the key.
 */
async function execute(
  decision: ExecuteDecision,
  handler: Handler,
  req: Request,
  res: Response,
): Promise<void> {
  const locals = res.locals as Locals;
  locals[EXECUTION] = decision;
  try {
    await handler(req, res);
  } catch (error) {
    if (locals[EXECUTION] !== decision) throw error;
    locals[EXECUTION] = undefined;
    const result = await decision.abort(error);
    for (const name of res.getHeaderNames()) res.removeHeader(name);
    send(res, result.response);
  }
}

/**
 * Overrides `end` once on the app's own response prototype (`app.response`), not per request:
 * a per-request `res.end = …` would give every response object a new shape. While an execution
 * waits in `res.locals`, `end` captures status, headers and body, awaits `commit()`, and only
 * then sends what the commit answers (the handler's response marked `Idempotent-Replayed:
 * false`, or a `lease-lost` problem). Express's res.send()/json() end with `end(chunk, encoding)`.
 */
function captureResponses(app: Express): void {
  const proto = app.response as Response;
  if (patched.has(proto)) return;
  patched.add(proto);
  const inherited = proto.end;
  proto.end = function end(
    this: Response,
    chunk?: unknown,
    encoding?: unknown,
    callback?: unknown,
  ): Response {
    const locals = this.locals as Locals | undefined;
    const decision = locals?.[EXECUTION];
    if (locals === undefined || decision === undefined) {
      return (inherited as (...args: unknown[]) => Response).call(this, chunk, encoding, callback);
    }
    locals[EXECUTION] = undefined;
    const body =
      typeof chunk === 'string'
        ? Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8')
        : chunk instanceof Uint8Array
          ? chunk
          : new Uint8Array(0);
    const done =
      typeof callback === 'function' ? callback : typeof encoding === 'function' ? encoding : undefined;
    const captured: EngineResponse = { status: this.statusCode, headers: headerLines(this), body };
    decision.commit(captured).then(
      (result) => {
        if (result.disposition === 'lease-lost') {
          for (const name of this.getHeaderNames()) this.removeHeader(name);
          send(this, result.response);
          return;
        }
        this.setHeader('idempotent-replayed', 'false');
        (inherited as (...args: unknown[]) => Response).call(this, body, done);
      },
      (error: unknown) => this.destroy(error instanceof Error ? error : new Error(String(error))),
    );
    return this;
  } as Response['end'];
}

/** Node's header record as the engine's lines (`set-cookie` arrays become one line each). */
function headerLines(res: Response): [string, string][] {
  const lines: [string, string][] = [];
  const headers = res.getHeaders();
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) lines.push([name, v]);
    else lines.push([name, String(value)]);
  }
  return lines;
}

function send(res: Response, response: EngineResponse): void {
  res.statusCode = response.status;
  for (const [name, value] of response.headers) res.appendHeader(name, value);
  res.end(response.body);
}

function isJson(contentType: string | undefined): boolean {
  return contentType !== undefined && /^application\/(?:[\w.+-]+\+)?json\b/i.test(contentType);
}
