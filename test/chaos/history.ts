import { createHash } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { createClient, type IdempotentClient } from '../../src/client/index.js';
import { AUTH_PREFIX, monoMs, PAY_PATH } from './config.js';

/*
 * Client histories, Jepsen style (guarantees §2.4 of the design): every attempt is one JSONL line
 * with its invoke and done times and one outcome — ok (2xx), fail (certainly not executed: 400,
 * 409 in-progress, 413, 422, 429, 503 store-unavailable) or info (possibly executed: no answer, a
 * reset, a cut body, other 5xx, 503 outcome-unknown, 409 lease-lost, 409 outcome-uncertain).
 * The recording sits in the `fetch` that idemkit/client calls for each attempt, so the client's
 * own retry policy runs unchanged.
 */

export type Outcome = 'ok' | 'fail' | 'info';

export interface Attempt {
  client: string;
  /** `principal|key`: what the store scopes a record by (method and path are fixed). */
  scope: string;
  key: string;
  principal: string;
  /** The request body (small JSON): the final phase re-sends it. */
  body: string;
  /** The query string of /pay (part of the fingerprint): the final and verify phases re-send it. */
  query?: string;
  bodySha: string;
  /** A request that reuses a key with another body on purpose (expects 422). */
  mutated: boolean;
  attempt: number;
  target: string;
  phase: 'load' | 'final' | 'verify';
  invoke: number;
  done: number;
  outcome: Outcome;
  status?: number;
  problem?: string;
  responseSha?: string;
  /** Allowlisted-header fingerprint of the answer: content-type and x-charge. */
  headersSha?: string;
  replayed?: boolean;
  /** What the answer's JSON says the principal is (I5). */
  answeredPrincipal?: string;
  error?: string;
}

const sha = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');

const FAIL_PROBLEMS = new Set([
  'in-progress',
  'store-unavailable',
  'key-reused',
  'invalid-key',
  'missing-key',
]);

export function classify(status: number, problem: string | undefined): Outcome {
  if (status >= 200 && status < 300) return 'ok';
  if (status === 400 || status === 413 || status === 422 || status === 429) return 'fail';
  if ((status === 409 || status === 503) && problem !== undefined && FAIL_PROBLEMS.has(problem))
    return 'fail';
  return 'info';
}

export interface Operation {
  key: string;
  principal: string;
  body: string;
  mutated?: boolean;
  /** Adds `x-chaos-fail: 1` to the first n attempts (the SUT's `fail` parameter applies then). */
  failAttempts?: number;
  /** Query string of /pay, e.g. `ms=700&fail=pre`. */
  query?: string;
}

export interface RecorderOptions {
  client: string;
  file: string;
  targets: readonly string[];
  phase: Attempt['phase'];
  timeoutMs: number;
  deadlineMs: number;
  retries: number;
  /**
   * How long a target that failed (no answer, a reset, a timeout, a 5xx) is passed over, as a
   * load balancer's outlier ejection would; 0 keeps strict rotation.
   */
  ejectMs?: number;
}

/** One operation at a time through idemkit/client, every attempt recorded. */
export class RecordingClient {
  private readonly options: RecorderOptions;
  private turn = 0;
  /** Target → monotonic ms until which it is passed over. */
  private readonly ejectedUntil = new Map<string, number>();

  constructor(options: RecorderOptions) {
    this.options = options;
  }

  async run(
    op: Operation,
    overrides: Partial<Pick<RecorderOptions, 'retries' | 'phase'>> = {},
  ): Promise<Attempt[]> {
    const attempts: Attempt[] = [];
    const options = { ...this.options, ...overrides };
    const bodySha = sha(op.body);
    const scope = `${op.principal}|${op.key}`;
    let attempt = 0;
    const recording: typeof fetch = async (input, init) => {
      attempt++;
      const target = this.pickTarget(attempt);
      const request = new Request(input, init);
      const url = new URL(request.url);
      const headers = new Headers(request.headers);
      if (attempt <= (op.failAttempts ?? 0)) headers.set('x-chaos-fail', '1');
      const entry: Attempt = {
        client: options.client,
        scope,
        key: op.key,
        principal: op.principal,
        body: op.body,
        ...(op.query ? { query: op.query } : {}),
        bodySha,
        mutated: op.mutated ?? false,
        attempt,
        target,
        phase: options.phase,
        invoke: monoMs(),
        done: 0,
        outcome: 'info',
      };
      try {
        const response = await fetch(`${target}${url.pathname}${url.search}`, {
          method: request.method,
          headers,
          body: op.body,
          signal: request.signal,
        });
        const bytes = new Uint8Array(await response.arrayBuffer());
        const text = new TextDecoder().decode(bytes);
        const json = parseJson(text);
        const problem =
          typeof json?.type === 'string' ? json.type.replace('urn:idemkit:problem:', '') : undefined;
        Object.assign(entry, {
          done: monoMs(),
          status: response.status,
          outcome: classify(response.status, problem),
          responseSha: sha(bytes),
          headersSha: sha(`${response.headers.get('content-type')}|${response.headers.get('x-charge')}`),
          replayed: response.headers.get('idempotent-replayed') === 'true',
          ...(problem ? { problem } : {}),
          ...(typeof json?.principal === 'string' ? { answeredPrincipal: json.principal } : {}),
        });
        record(options.file, entry, attempts);
        if (response.status === 503) this.eject(target);
        return new Response(bytes, { status: response.status, headers: response.headers });
      } catch (error) {
        this.eject(target);
        entry.done = monoMs();
        entry.error =
          (error as Error).name === 'AbortError' ? 'timeout' : String((error as Error).message ?? error);
        record(options.file, entry, attempts);
        throw error;
      }
    };
    const client: IdempotentClient = createClient({
      baseUrl: 'http://chaos.invalid',
      headers: { authorization: `${AUTH_PREFIX}${op.principal}` },
      retries: { limit: options.retries, baseDelayMs: 50, maxDelayMs: 1_000, maxRetryAfterMs: 10_000 },
      timeoutMs: options.timeoutMs,
      deadlineMs: options.deadlineMs,
      budget: false,
      fetch: recording,
    });
    try {
      const path = op.query ? `${PAY_PATH}?${op.query}` : PAY_PATH;
      await client.fetch(path, {
        method: 'POST',
        body: op.body,
        headers: { 'content-type': 'application/json' },
        idempotencyKey: op.key,
      });
    } catch {
      // Recorded per attempt; a give-up is the history's last `info` or `fail`.
    } finally {
      await client.close?.();
    }
    return attempts;
  }

  /** Round robin over the targets not ejected; every target when all are. */
  private pickTarget(attempt: number): string {
    const { targets } = this.options;
    const now = monoMs();
    for (let i = 0; i < targets.length; i++) {
      const target = targets[(this.turn + attempt + i) % targets.length] as string;
      if ((this.ejectedUntil.get(target) ?? 0) <= now) {
        this.turn++;
        return target;
      }
    }
    return targets[(this.turn++ + attempt) % targets.length] as string;
  }

  private eject(target: string): void {
    const ejectMs = this.options.ejectMs ?? 0;
    if (ejectMs > 0) this.ejectedUntil.set(target, monoMs() + ejectMs);
  }
}

function record(file: string, entry: Attempt, sink: Attempt[]): void {
  sink.push(entry);
  appendFileSync(file, `${JSON.stringify(entry)}\n`);
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(text) as unknown;
    return value && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
