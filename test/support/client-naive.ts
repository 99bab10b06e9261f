import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * The negative control: the retry loop as too many integrations write it, with the same rules
 * as idemkit/client (network errors, timeouts, 408/409/425/429/5xx, a few attempts, a timeout
 * each) except one: it draws a new Idempotency-Key for every attempt, so the server cannot tell
 * a retry from a new operation.
 */
export async function naivePost(
  url: string,
  body: string,
  options: { attempts?: number; timeoutMs?: number; headers?: Record<string, string> } = {},
): Promise<{ status: number; attempts: number }> {
  const attempts = options.attempts ?? 5;
  let status = 0;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...options.headers, 'idempotency-key': randomUUID() },
        body,
        signal: AbortSignal.timeout(options.timeoutMs ?? 300),
      });
      await response.arrayBuffer();
      status = response.status;
      if (status < 400 || (![408, 409, 425, 429].includes(status) && status < 500))
        return { status, attempts: attempt };
    } catch {
      status = 0;
    }
    await sleep(5 * attempt);
  }
  return { status, attempts };
}

/** A deterministic stream of numbers in [0, 1) from a seed string (mulberry32 over a string hash). */
export function seededRandom(seed: string): () => number {
  let state = 0;
  for (let i = 0; i < seed.length; i++) state = (Math.imul(state, 31) + seed.charCodeAt(i)) | 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
