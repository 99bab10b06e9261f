import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import type { IdempotencyStore, StoredRecord, StoredResponse } from '../core/store.js';

/*
 * Shared pieces of the store contract suite: responses that exercise the codec paths, random
 * names so suites can share one database, and the two ways of letting store time pass.
 */

/** A lease or retention that runs out during a test (ms). Short, so clock-less stores poll briefly. */
export const SHORT_MS = 200;
/** A lease or retention that must not run out during a test (ms). */
export const LONG_MS = 60_000;

/** Every byte value once: a body that survives only a byte-exact, non-text path. */
export const ALL_BYTES = Uint8Array.from({ length: 256 }, (_, i) => i);

export const RESPONSES = {
  binary: {
    status: 201,
    // Order and repeated names must survive: the engine replays headers as stored.
    headers: [
      ['content-type', 'application/octet-stream'],
      ['x-zeta', 'last-alphabetically-first-in-order'],
      ['set-cookie', 'a=1'],
      ['x-alpha', 'Zoë ✓'],
      ['set-cookie', 'b=2'],
    ],
    body: ALL_BYTES,
  },
  empty: { status: 200, headers: [['content-length', '0']], body: new Uint8Array(0) },
  noContent: { status: 204, headers: [], body: new Uint8Array(0) },
  omitted: {
    status: 200,
    headers: [['content-type', 'application/json']],
    body: new Uint8Array(0),
    bodyOmitted: true,
    bodySha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  },
  utf8: {
    status: 422,
    headers: [['content-type', 'application/problem+json; charset=utf-8']],
    body: new TextEncoder().encode('{"title":"Zoë 🚀 \\u0000"}'),
  },
} as const satisfies Record<string, StoredResponse>;

/** A deep copy, so a test can hand a store a response and still compare against the original. */
export function copyResponse(response: StoredResponse): StoredResponse {
  const copy: StoredResponse = {
    status: response.status,
    headers: response.headers.map(([name, value]) => [name, value]),
    body: Uint8Array.from(response.body),
  };
  if (response.bodyOmitted !== undefined) copy.bodyOmitted = response.bodyOmitted;
  if (response.bodySha256 !== undefined) copy.bodySha256 = response.bodySha256;
  return copy;
}

/** A store-independent view of a response: stores may hand back a Buffer or a Uint8Array. */
export function responseView(response: StoredResponse | undefined): unknown {
  if (response === undefined) return undefined;
  assert.ok(response.body instanceof Uint8Array, 'response.body must be a Uint8Array');
  return {
    status: response.status,
    headers: response.headers.map(([name, value]) => [name, value]),
    body: Buffer.from(response.body.buffer, response.body.byteOffset, response.body.byteLength).toString(
      'hex',
    ),
    bodyOmitted: response.bodyOmitted ?? false,
    bodySha256: response.bodySha256 ?? null,
  };
}

export function assertSameResponse(actual: StoredResponse | undefined, expected: StoredResponse): void {
  assert.deepEqual(responseView(actual), responseView(expected));
}

/** A random store key: suites on a shared PostgreSQL or Redis never see each other's records. */
export function randomKey(label = 'k'): string {
  return `idemkit-contract:${label}:${randomUUID()}`;
}

/** A 128-bit owner token, as the engine makes them. */
export function randomToken(): string {
  return randomBytes(16).toString('hex');
}

/** A fingerprint in the engine's `<secret version>:<HMAC>` shape. */
export function randomFingerprint(): string {
  return `1:${randomBytes(32).toString('base64url')}`;
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `probe` until it returns true; fails with `what` after `timeoutMs`. */
export async function eventually(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (let interval = 5; ; interval = Math.min(interval * 2, 25)) {
    if (await probe()) return;
    if (performance.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(interval);
  }
}

/**
 * Lets `ms` of store time pass. With an injected clock that is one `advance`. Without one
 * (PostgreSQL `now()`, Redis `TIME`), a probe key is claimed with a lease of `ms` and polled until
 * a takeover succeeds: store time has then passed `ms` since the probe's claim, so it has passed
 * for every record made before it, measured by the store's own clock and with no fixed sleep.
 */
export async function passStoreTime(
  store: IdempotencyStore,
  clock: { advance(ms: number): void } | undefined,
  ms: number,
): Promise<void> {
  if (clock) {
    clock.advance(ms);
    return;
  }
  const key = randomKey('clock-probe');
  const fingerprint = randomFingerprint();
  const claim = (leaseMs: number) =>
    store.claim({ key, fingerprint, token: randomToken(), leaseMs, retentionMs: LONG_MS });
  assert.equal((await claim(ms)).outcome, 'acquired');
  await eventually(
    `${ms} ms of store time to pass`,
    async () => (await claim(LONG_MS)).outcome === 'acquired',
    ms + 10_000,
  );
  await store.delete(key);
}

/** Sweeps until a call deletes fewer than its limit (bounded); returns the total deleted. */
export async function sweepAll(store: IdempotencyStore, limit = 500): Promise<number> {
  let total = 0;
  for (let round = 0; round < 1_000; round++) {
    const deleted = await store.sweep(limit);
    total += deleted;
    if (deleted < limit) return total;
  }
  assert.fail('sweep kept returning its limit after 1000 calls');
}

/** A record must never carry its owner token (types.ts: "The owner token is never exposed"). */
export function assertNoToken(record: StoredRecord | undefined, token: string): void {
  const text = JSON.stringify(record ?? null, (_key, value: unknown) =>
    value instanceof Uint8Array ? '<bytes>' : value,
  );
  assert.ok(!text.includes(token), 'a store record exposes the owner token');
}
