import type { Decision, HandlerContext } from './decision.js';
import { problemResponse } from './problem.js';
import type { EngineRequest } from './request.js';
import { type EngineResponse, isNullBodyStatus } from './response.js';

/** A Web `Request → Response` handler; `ctx` is present when the request runs under a claim. */
export type FetchHandler = (request: Request, ctx?: HandlerContext) => Response | Promise<Response>;

/** The part of the engine the fetch flow uses (the types alone: no import of engine.ts). */
interface Engine {
  begin(request: EngineRequest): Promise<Decision>;
  readonly options: { readonly methods: ReadonlySet<string>; readonly maxBodyBytes: number };
}

/**
 * The whole flow for fetch-style code: read the body within the limit,
 * decide, run the handler under the claim, persist, answer. Shared by `idemkit/fetch` and the
 * `handle()` of the engine.
 */
export async function handleFetch(
  engine: Engine,
  request: Request,
  handler: FetchHandler,
  native?: unknown,
): Promise<Response> {
  if (!engine.options.methods.has(request.method.toUpperCase())) return handler(request);
  const body = await readBody(request, engine.options.maxBodyBytes);
  if (body === undefined) return toWebResponse(problemResponse('payload-too-large'));

  const url = new URL(request.url);
  const decision = await engine.begin({
    method: request.method,
    path: url.pathname,
    query: url.search.slice(1),
    headers: request.headers,
    body,
    native: native ?? request,
  });
  switch (decision.kind) {
    case 'bypass':
      return handler(rebuild(request, body));
    case 'reject':
    case 'replay':
      return toWebResponse(decision.response);
    case 'execute': {
      // Reading the body belongs to the handler's run: a stream that fails midway must end the
      // execution (release, or uncertain after effectsStarted()) like a throw, or the claim would
      // be renewed for the life of the process and the principal's in-flight slot would leak.
      let captured: EngineResponse;
      try {
        captured = await captureResponse(await handler(rebuild(request, body), decision.ctx));
      } catch (error) {
        return toWebResponse((await decision.abort(error)).response);
      }
      return toWebResponse((await decision.commit(captured)).response);
    }
    default:
      return decision satisfies never;
  }
}

/** Reads the body, or `undefined` once it passes `maxBytes` (reading stops there, S9). */
export async function readBody(request: Request, maxBytes: number): Promise<Uint8Array | undefined> {
  const declared = Number(request.headers.get('content-length') ?? '0');
  if (declared > maxBytes) return undefined;
  if (!request.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = request.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  return chunks.length === 1 ? (chunks[0] as Uint8Array) : Buffer.concat(chunks, total);
}

function rebuild(request: Request, body: Uint8Array): Request {
  const hasBody = body.byteLength > 0 && request.method !== 'GET' && request.method !== 'HEAD';
  // No `signal: request.signal`: a client that disconnects must not abort a claimed handler
  // (F6); only a lost lease does, through ctx.signal.
  return new Request(request.url, {
    method: request.method,
    headers: request.headers,
    body: hasBody ? (body as Uint8Array<ArrayBuffer>) : null,
  });
}

export async function captureResponse(response: Response): Promise<EngineResponse> {
  const headers: [string, string][] = [];
  response.headers.forEach((value, name) => {
    if (name !== 'set-cookie') headers.push([name, value]);
  });
  for (const cookie of response.headers.getSetCookie()) headers.push(['set-cookie', cookie]);
  const body = new Uint8Array(await response.arrayBuffer());
  return { status: response.status, headers, body };
}

export function toWebResponse(response: EngineResponse): Response {
  const headers = new Headers();
  for (const [name, value] of response.headers) headers.append(name, value);
  const body = isNullBodyStatus(response.status) ? null : (response.body as Uint8Array<ArrayBuffer>);
  return new Response(body, { status: response.status, headers });
}
