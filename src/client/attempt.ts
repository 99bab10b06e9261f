import type { AttemptBody } from './body.js';
import { bufferedResponse } from './response.js';

/** One request exactly as every attempt of an operation sends it. */
export interface PreparedRequest {
  method: string;
  url: string;
  headers: readonly (readonly [string, string])[];
  body: AttemptBody;
  /** The call's other fetch options (`redirect`, undici's `dispatcher`, …), passed to every attempt. */
  fetchOptions?: Readonly<RequestInit>;
}

/** An attempt's result: an answer (body fully read), or no usable answer. */
export type AttemptOutcome =
  | {
      kind: 'answer';
      response: Response;
      /** The problem code of an RFC 9457 answer (`in-progress`, `key-reused`, …), when there is one. */
      problem: string | undefined;
    }
  | {
      kind: 'failure';
      error: unknown;
      /** The attempt's own timeout fired (not the caller's signal). */
      timedOut: boolean;
      /** The error proves the request never left this machine (refused, DNS): safe to retry whatever it is. */
      notSent: boolean;
    };

/** Errors raised before a connection existed, so before any byte of the request was sent. */
const NOT_SENT = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/**
 * Sends one attempt and reads its whole body within `timeoutMs`. The caller's abort is not an
 * outcome: it is thrown as fetch throws it.
 */
export async function sendAttempt(
  fetchImpl: typeof fetch,
  request: PreparedRequest,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<AttemptOutcome> {
  const timeout = AbortSignal.timeout(Math.max(1, Math.ceil(timeoutMs)));
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
  try {
    const body = typeof request.body === 'function' ? await request.body() : request.body;
    const response = await fetchImpl(request.url, {
      ...request.fetchOptions,
      method: request.method,
      headers: request.headers as [string, string][],
      ...(body === undefined ? {} : { body, duplex: 'half' }),
      signal: combined,
    } as RequestInit);
    const bytes = new Uint8Array(await response.arrayBuffer());
    return {
      kind: 'answer',
      response: bufferedResponse(response, bytes),
      problem: problemOf(response, bytes),
    };
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    return {
      kind: 'failure',
      error,
      timedOut: timeout.aborted,
      notSent: !timeout.aborted && neverSent(error),
    };
  }
}

/** The last segment of a problem `type` (`urn:idemkit:problem:in-progress` → `in-progress`). */
function problemOf(response: Response, bytes: Uint8Array): string | undefined {
  if (response.status !== 409 && response.status !== 422) return undefined;
  if (!/json/i.test(response.headers.get('content-type') ?? '') || bytes.byteLength > 65_536)
    return undefined;
  try {
    const type = (JSON.parse(new TextDecoder().decode(bytes)) as { type?: unknown }).type;
    return typeof type === 'string' ? type.split(/[:/#]/).pop() : undefined;
  } catch {
    return undefined;
  }
}

function neverSent(error: unknown): boolean {
  for (let cause = error, depth = 0; cause && depth < 5; depth++) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === 'string' && NOT_SENT.has(code)) return true;
    // Happy eyeballs: every address failed, each with its own error.
    const inner = (cause as { errors?: unknown }).errors;
    if (Array.isArray(inner) && inner.length > 0 && inner.every((e) => neverSent(e))) return true;
    cause = (cause as { cause?: unknown }).cause;
  }
  return false;
}
