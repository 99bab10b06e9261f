import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readNodeBody } from '../../src/adapters/node-http.js';
import { handleNodeRequest } from '../../src/adapters/node-http-flow.js';
import { createIdempotency, type Idempotency } from '../../src/core/engine.js';
import type { ProblemCode } from '../../src/core/errors.js';
import type { IdempotencyOptions } from '../../src/core/options.js';
import { problemResponse } from '../../src/core/problem.js';
import { memoryStore } from '../../src/index.js';

/**
 * What the server does with the n-th request of an operation (n counted per `operation` id in
 * the body, so a client that draws a new key per attempt meets the same script):
 * - `ok`: idemkit in front, the handler runs and answers 201;
 * - `drop`: the handler runs and the answer is committed, then the connection is destroyed;
 * - `hang`: the handler runs and the answer is committed, then nothing comes back until the
 *   client gives up;
 * - `slow`: the handler holds the claim `slowMs` before answering (a retry meanwhile gets
 *   idemkit's real 409 `in-progress`);
 * - `uncertain`: the handler starts its effects and then throws (the key becomes uncertain);
 * - `bad-request`: the handler answers 400 (stored and replayed like any answer);
 * - a status: answered in front of idemkit (a load balancer, a rate limiter): nothing runs.
 */
export type Action =
  | 'ok'
  | 'drop'
  | 'hang'
  | 'slow'
  | 'uncertain'
  | 'bad-request'
  | { status: number; retryAfter?: string; problem?: ProblemCode };

export type Script = (request: { path: string; operation: string | undefined; n: number }) => Action;

/** A route whose key travels elsewhere than the header: idemkit's `keyFrom` for paths under `prefix`. */
export interface CarrierRoute {
  prefix: string;
  keyFrom: NonNullable<IdempotencyOptions['keyFrom']>;
}

export interface SeenRequest {
  method: string;
  /** Path and query. */
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  operation: string | undefined;
  n: number;
}

export interface ClientTestServer {
  url: string;
  /** Executions per operation id: the side effect idemkit must keep at one. */
  readonly ledger: ReadonlyMap<string, number>;
  readonly seen: readonly SeenRequest[];
  script(next: Script): void;
  /** Operations executed more than once. */
  duplicates(): string[];
  close(): Promise<void>;
}

/**
 * A real node:http server on 127.0.0.1 with idemkit in front of a charging handler (through
 * `handleNodeRequest` and a memory store), plus the faults of a real network and real servers.
 */
export async function startClientTestServer(
  options: { routes?: readonly CarrierRoute[]; slowMs?: number } = {},
): Promise<ClientTestServer> {
  const store = memoryStore({ onWarning() {} });
  const engineOf = (keyFrom?: CarrierRoute['keyFrom']): Idempotency =>
    // required: false — a request without a key runs unprotected, as on an API without key support.
    createIdempotency({ store, required: false, onWarning() {}, ...(keyFrom ? { keyFrom } : {}) });
  const headerEngine = engineOf();
  const routes = (options.routes ?? []).map((r) => ({ prefix: r.prefix, engine: engineOf(r.keyFrom) }));
  const ledger = new Map<string, number>();
  const perOperation = new Map<string, number>();
  const seen: SeenRequest[] = [];
  let script: Script = () => 'ok';

  const server = createServer((req, res) => {
    void serve(req, res).catch(() => res.destroy());
  });

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = (await readNodeBody(req, 1 << 20)) ?? new Uint8Array();
    const text = Buffer.from(body).toString('utf8');
    const operation = operationOf(text);
    const counter = operation ?? `${req.method} ${req.url}`;
    const n = (perOperation.get(counter) ?? 0) + 1;
    perOperation.set(counter, n);
    const path = (req.url ?? '/').split('?')[0] as string;
    seen.push({
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      body: text,
      operation,
      n,
    });
    const action = script({ path, operation, n });

    if (typeof action === 'object') return answerInFront(res, action);
    if (action === 'drop') {
      // The engine sends the committed answer with end(): lose it on the way out instead.
      const own = res as unknown as Record<string, unknown>;
      own.end = () => res.socket?.destroy();
    } else if (action === 'hang') {
      const own = res as unknown as Record<string, unknown>;
      own.end = () => res;
    }
    const engine = routes.find((r) => path.startsWith(r.prefix))?.engine ?? headerEngine;
    await handleNodeRequest(engine, req, res, body, async (ctx) => {
      if (action === 'bad-request') {
        res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"amount must be positive"}');
        return;
      }
      ctx?.effectsStarted();
      if (operation !== undefined) ledger.set(operation, (ledger.get(operation) ?? 0) + 1);
      if (action === 'uncertain') throw new Error('the card network timed out after the charge was sent');
      if (action === 'slow') await new Promise((resolve) => setTimeout(resolve, options.slowMs ?? 600));
      const id = `ch_${randomBytes(6).toString('hex')}`;
      res
        .writeHead(201, { 'content-type': 'application/json', location: `/charges/${id}` })
        .end(JSON.stringify({ id, operation, executions: ledger.get(operation ?? '') ?? 0 }));
    });
  }

  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    ledger,
    seen,
    script(next) {
      script = next;
    },
    duplicates: () => [...ledger].filter(([, count]) => count > 1).map(([op]) => op),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function answerInFront(res: ServerResponse, action: Exclude<Action, string>): void {
  if (action.problem) {
    const problem = problemResponse(action.problem);
    const headers = Object.fromEntries(problem.headers.filter(([name]) => name !== 'retry-after'));
    if (action.retryAfter !== undefined) headers['retry-after'] = action.retryAfter;
    res.writeHead(problem.status, headers).end(Buffer.from(problem.body));
    return;
  }
  const headers: Record<string, string> = { 'content-type': 'text/plain' };
  if (action.retryAfter !== undefined) headers['retry-after'] = action.retryAfter;
  res.writeHead(action.status, headers).end(`status ${action.status}`);
}

/** The operation id in a JSON or form body: what the ledger counts. */
function operationOf(text: string): string | undefined {
  if (text === '') return undefined;
  try {
    const value = (JSON.parse(text) as { operation?: unknown }).operation;
    return typeof value === 'string' ? value : undefined;
  } catch {
    return new URLSearchParams(text).get('operation') ?? undefined;
  }
}
