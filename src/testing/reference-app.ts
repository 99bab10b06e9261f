import type { HandlerContext } from '../core/decision.js';

/**
 * The app the HTTP contract suite puts behind each adapter and the gateway. Every execution is
 * counted in a ledger under the `x-op` header the test sends, so a test sees duplicates even when
 * the responses look alike.
 *
 * | route                | behaviour                                                          |
 * |----------------------|--------------------------------------------------------------------|
 * | POST /pay            | 201 JSON with the execution number; Location, ETag, Set-Cookie, X-Internal |
 * | POST /slow?ms=       | sleeps, then 201                                                   |
 * | POST /status?code=   | answers that status with a JSON body                               |
 * | POST /throw          | throws an Error whose message and stack must never reach a client  |
 * | POST /binary         | 200 with all 256 byte values, application/octet-stream             |
 * | POST /empty          | 204                                                                |
 * | POST /big?bytes=     | 200 with a body of that many bytes                                 |
 * | POST /secret         | mints a one-time token and sets a session cookie                   |
 * | GET  /pay            | 200, counted (safe methods are never covered)                      |
 */
export interface ReferenceApp {
  fetch(request: Request, ctx?: HandlerContext): Promise<Response>;
  /** Executions per `x-op` value. */
  executions(op: string): number;
  /** Downstream keys seen per `x-op` (what the handler would pass to a payment provider). */
  downstreamKeys(op: string): string[];
}

export const INTERNAL_ERROR_TEXT = 'db password hunter2 at /srv/app/internal.ts';

export function createReferenceApp(): ReferenceApp {
  const ledger = new Map<string, number>();
  const downstream = new Map<string, string[]>();
  let executionCounter = 0;

  async function handle(request: Request, ctx?: HandlerContext): Promise<Response> {
    const url = new URL(request.url);
    const op = request.headers.get('x-op') ?? '';
    ledger.set(op, (ledger.get(op) ?? 0) + 1);
    const execution = ++executionCounter;
    // The gateway forwards a derived key instead of giving the upstream a ctx.
    const downstreamKey = ctx?.downstreamKey() ?? request.headers.get('idempotency-key') ?? '';
    downstream.set(op, [...(downstream.get(op) ?? []), downstreamKey]);
    const body = request.method === 'GET' ? '' : await request.text();

    switch (`${request.method} ${url.pathname}`) {
      case 'POST /pay':
        return Response.json(
          {
            execution,
            tenant: request.headers.get('x-tenant') ?? '',
            authorization: request.headers.get('authorization') ?? '',
            body,
          },
          {
            status: 201,
            headers: {
              location: `/payments/${execution}`,
              etag: `"p${execution}"`,
              'set-cookie': `session=s${execution}; HttpOnly`,
              'x-internal': `node-${execution}`,
            },
          },
        );
      case 'POST /slow':
        await new Promise((resolve) => setTimeout(resolve, Number(url.searchParams.get('ms') ?? '500')));
        return Response.json({ execution, slow: true }, { status: 201 });
      case 'POST /status': {
        const status = Number(url.searchParams.get('code') ?? '200');
        return Response.json({ execution, status }, { status });
      }
      case 'POST /throw':
        throw new Error(INTERNAL_ERROR_TEXT);
      case 'POST /binary':
        return new Response(
          Uint8Array.from({ length: 256 }, (_, i) => i),
          {
            headers: { 'content-type': 'application/octet-stream' },
          },
        );
      case 'POST /empty':
        return new Response(null, { status: 204 });
      case 'POST /big':
        return new Response('x'.repeat(Number(url.searchParams.get('bytes') ?? '0')), { status: 201 });
      case 'POST /secret':
        return Response.json(
          { token: `one-time-${execution}-${Math.random().toString(36).slice(2)}` },
          { status: 201, headers: { 'set-cookie': `sid=secret${execution}; HttpOnly; Secure` } },
        );
      case 'GET /pay':
        return Response.json({ execution });
      default:
        return Response.json({ error: 'not found' }, { status: 404 });
    }
  }

  return {
    fetch: handle,
    executions: (op) => ledger.get(op) ?? 0,
    downstreamKeys: (op) => downstream.get(op) ?? [],
  };
}
