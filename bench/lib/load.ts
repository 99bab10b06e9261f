import { randomUUID } from 'node:crypto';
import autocannon, { type RequestData } from 'autocannon';
import { BENCH_AUTH, orderBody, PATH, REPLAY_KEY } from './variants.js';

export interface LoadOptions {
  url: string;
  connections: number;
  durationS: number;
  /** `unique`: a fresh key and body per request; `replay`: the same key and body every time. */
  keys: 'unique' | 'replay';
  /** Requests per second over all connections; unset: as fast as the server answers. */
  rate?: number | undefined;
  /** The path requests go to. @default PATH */
  path?: string | undefined;
}

export interface LoadResult {
  /** Responses received (any status). */
  responses: number;
  non2xx: number;
  /** Connection errors and timeouts. */
  errors: number;
  seconds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
}

/** Latencies kept per run at most (a bound on memory: 16 MB). */
const MAX_SAMPLES = 2_000_000;
const latencies = new Float64Array(MAX_SAMPLES);

// Unique keys never repeat within a bench process: a random UUID-shaped prefix, then a counter.
const prefix = randomUUID().slice(0, 24);
let seq = 0;

function stampUnique(request: RequestData): RequestData {
  const n = ++seq;
  request.headers = { ...request.headers, 'idempotency-key': `${prefix}${n.toString(16).padStart(12, '0')}` };
  request.body = orderBody(n);
  return request;
}

const replayBody = orderBody(0);
function stampReplay(request: RequestData): RequestData {
  request.headers = { ...request.headers, 'idempotency-key': REPLAY_KEY };
  request.body = replayBody;
  return request;
}

/**
 * One autocannon run: POST `PATH` with an 88-byte JSON body. Every variant goes through the same
 * `setupRequest` (the bare handler ignores the key), so the client does the same work for each.
 * Latencies are taken from autocannon's per-response event in fractional ms (its own histogram
 * rounds to whole ms), and percentiles computed exactly.
 */
export function runLoad(options: LoadOptions): Promise<LoadResult> {
  let samples = 0;
  let responses = 0;
  let non2xx = 0;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: `${options.url}${options.path ?? PATH}`,
        connections: options.connections,
        duration: options.durationS,
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: BENCH_AUTH },
        timeout: 10,
        ...(options.rate === undefined ? {} : { overallRate: options.rate }),
        requests: [{ setupRequest: options.keys === 'unique' ? stampUnique : stampReplay }],
      },
      (error, result) => {
        if (error) {
          reject(error);
          return;
        }
        const seconds = (performance.now() - started) / 1_000;
        const sorted = latencies.subarray(0, samples).sort();
        resolve({
          responses,
          non2xx,
          errors: result.errors,
          seconds,
          rps: responses / seconds,
          p50Ms: percentile(sorted, 0.5),
          p99Ms: percentile(sorted, 0.99),
        });
      },
    );
    instance.on('response', (_client, status, _bytes, ms) => {
      responses++;
      if (status < 200 || status > 299) non2xx++;
      else if (samples < MAX_SAMPLES) latencies[samples++] = ms;
    });
  });
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}
