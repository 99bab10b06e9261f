import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { IdempotencyOptions } from '../core/options.js';
import { defaultClassify } from '../core/options.js';
import { headerValue } from '../core/request.js';
import { defineHttpContractLimits } from './http-contract-limits.js';
import { defineHttpContractSecurity } from './http-contract-security.js';
import { defineHttpContractSyntax } from './http-contract-syntax.js';
import {
  type ContractHarness,
  call,
  post,
  type ServedApp,
  type Started,
  type StoreHandle,
  slow,
} from './http-harness.js';
import { createReferenceApp, type ReferenceApp } from './reference-app.js';
import { countingStore } from './store-spy.js';

export type { ContractHarness, Started, StoreHandle } from './http-harness.js';

export interface HttpContractOptions {
  /** Shown in test names: the adapter and store, e.g. `fetch + sqlite`. */
  name: string;
  describe: (name: string, fn: () => void) => unknown;
  it: (name: string, fn: () => Promise<void>) => unknown;
  /** A fresh store for one server; the suite wraps it with a call counter. */
  createStore: () => StoreHandle | Promise<StoreHandle>;
  /** Puts idemkit (adapter or gateway) in front of `app` with exactly these options. */
  start: (setup: { app: ReferenceApp; options: IdempotencyOptions }) => Promise<Started>;
  /** Needed for stores without their own secret (PostgreSQL, Redis). */
  secret?: string;
  /** Key fuzz cases (docs/guarantees.md T46). @default 10_000 */
  fuzzRuns?: number;
}

/** Retention used by T7, on requests whose query has `short`. */
export const SHORT_RETENTION_MS = 2_000;

/**
 * The HTTP contract, black-box over real sockets. Every adapter and the gateway run it unchanged.
 */
export function defineHttpContract(options: HttpContractOptions): void {
  const { describe, it } = options;
  const harness: ContractHarness = {
    options,
    test(name, overrides, body) {
      it(name, async () => {
        const served = await harness.serve(overrides);
        try {
          await body(served);
        } finally {
          await served.close();
        }
      });
    },
    async serve(overrides = {}) {
      const handle = await options.createStore();
      const spy = countingStore(handle.store);
      const app = createReferenceApp();
      const query = (q: string | undefined) => new URLSearchParams(q ?? '');
      const idempotency: IdempotencyOptions = {
        store: spy.store,
        ...(options.secret === undefined ? {} : { secret: options.secret }),
        required: (req) => !query(req.query).has('optional'),
        retentionMs: (req) => (query(req.query).has('short') ? SHORT_RETENTION_MS : 86_400_000),
        tenant: (_native, req) => headerValue(req.headers, 'x-tenant'),
        classify: (res, req) =>
          req.path === '/throw' && query(req.query).has('store5xx') ? 'store' : defaultClassify(res),
        onWarning: () => {},
        sweepIntervalMs: 0,
        ...overrides,
      };
      const started = await options.start({ app, options: idempotency });
      return {
        url: started.url,
        app,
        storeCalls: spy.calls,
        async close() {
          await started.close();
          await handle.cleanup?.();
        },
      };
    },
  };

  describe(`HTTP contract: ${options.name}`, () => {
    harness.test(
      'T1 the first request executes and every retry replays status, body and allowlisted headers',
      {},
      async (s) => {
        const key = randomUUID();
        const body = JSON.stringify({ amount: 1000, currency: 'eur' });
        const first = await post(s.url, '/pay', { key, body, op: 'T1' });
        assert.equal(first.status, 201);
        assert.equal(first.headers.get('idempotent-replayed'), 'false');
        assert.ok(first.headers.get('set-cookie'), 'the first caller still gets its own cookie');
        for (let i = 0; i < 5; i++) {
          const replay = await post(s.url, '/pay', { key, body, op: 'T1' });
          assert.equal(replay.status, 201);
          assert.deepEqual(replay.bytes, first.bytes);
          assert.equal(replay.headers.get('idempotent-replayed'), 'true');
          assert.equal(replay.headers.get('cache-control'), 'no-store');
          assert.equal(replay.headers.get('location'), first.headers.get('location'));
          assert.equal(replay.headers.get('etag'), first.headers.get('etag'));
          assert.equal(replay.headers.get('content-type'), first.headers.get('content-type'));
          assert.equal(replay.headers.get('set-cookie'), null);
          assert.equal(replay.headers.get('x-internal'), null);
        }
        assert.equal(s.app.executions('T1'), 1);
      },
    );

    harness.test(
      'negative control for T1: with idemkit covering no method, the same retries execute 6 times',
      { methods: [] },
      async (s) => {
        const key = randomUUID();
        for (let i = 0; i < 6; i++) await post(s.url, '/pay', { key, body: '{"a":1}', op: 'T1-off' });
        assert.equal(s.app.executions('T1-off'), 6);
      },
    );

    harness.test(
      'T2 the same key with another body or query gets 422 key-reused and never executes',
      {},
      async (s) => {
        const key = randomUUID();
        const body = '{"amount":1000,"currency":"eur"}';
        assert.equal((await post(s.url, '/pay', { key, body, op: 'T2' })).status, 201);
        const changed = await post(s.url, '/pay', {
          key,
          body: '{"amount":1001,"currency":"eur"}',
          op: 'T2',
        });
        assert.equal(changed.status, 422);
        assert.equal(changed.problem?.type, 'urn:idemkit:problem:key-reused');
        const otherQuery = await post(s.url, '/pay?note=x', { key, body, op: 'T2' });
        assert.equal(otherQuery.status, 422);
        const reordered = await post(s.url, '/pay', {
          key,
          body: '{ "currency": "eur",\n "amount": 1000 }',
          op: 'T2',
        });
        assert.equal(reordered.status, 201);
        assert.equal(reordered.headers.get('idempotent-replayed'), 'true');
        assert.equal(s.app.executions('T2'), 1);
      },
    );

    harness.test(
      'T2 large integers are compared exactly: amounts that share a double are different requests',
      {},
      async (s) => {
        const key = randomUUID();
        assert.equal(
          (await post(s.url, '/pay', { key, body: '{"amount":12345678901234567890}', op: 'T2b' })).status,
          201,
        );
        const other = await post(s.url, '/pay', { key, body: '{"amount":12345678901234567891}', op: 'T2b' });
        assert.equal(other.status, 422);
        assert.equal(s.app.executions('T2b'), 1);
      },
    );

    harness.test(
      'T2 raw-bytes mode: reordered JSON keys are another request (422)',
      { fingerprintBody: 'raw' },
      async (s) => {
        const key = randomUUID();
        assert.equal((await post(s.url, '/pay', { key, body: '{"a":1,"b":2}', op: 'T2r' })).status, 201);
        assert.equal((await post(s.url, '/pay', { key, body: '{"b":2,"a":1}', op: 'T2r' })).status, 422);
        assert.equal(s.app.executions('T2r'), 1);
      },
    );

    harness.test(
      "T2/S2 the same key on another route or method is another operation, never the first one's result",
      {},
      async (s) => {
        const key = randomUUID();
        const first = await post(s.url, '/pay', { key, body: '{}', op: 'T2s' });
        const otherRoute = await post(s.url, '/status?code=201', { key, body: '{}', op: 'T2s-other' });
        const otherMethod = await call(s.url, 'PATCH', '/pay', { key, body: '{}', op: 'T2s-patch' });
        assert.equal(otherRoute.headers.get('idempotent-replayed'), 'false');
        assert.notDeepEqual(otherRoute.bytes, first.bytes);
        assert.equal(otherMethod.headers.get('idempotent-replayed'), 'false');
        assert.equal(s.app.executions('T2s-other'), 1);
        assert.equal(s.app.executions('T2s-patch'), 1);
      },
    );

    harness.test(
      'T3 a covered request without a key gets 400 missing-key; an optional route passes through',
      {},
      async (s) => {
        const missing = await post(s.url, '/pay', { body: '{}', op: 'T3' });
        assert.equal(missing.status, 400);
        assert.equal(missing.problem?.type, 'urn:idemkit:problem:missing-key');
        assert.equal(missing.headers.get('cache-control'), 'no-store');
        assert.equal(s.app.executions('T3'), 0);
        await post(s.url, '/pay?optional', { body: '{}', op: 'T3-optional' });
        await post(s.url, '/pay?optional', { body: '{}', op: 'T3-optional' });
        assert.equal(s.app.executions('T3-optional'), 2);
        assert.equal(s.storeCalls(), 0, 'no record is made for requests without a key');
      },
    );

    harness.test(
      'T4 a concurrent duplicate gets 409 in-progress with Retry-After, then the replay',
      {},
      async (s) => {
        const key = randomUUID();
        const first = slow(s.url, key, 1_500, 'T4');
        await untilStarted(s, 'T4');
        const duplicate = await slow(s.url, key, 1_500, 'T4');
        assert.equal(duplicate.status, 409);
        assert.equal(duplicate.problem?.type, 'urn:idemkit:problem:in-progress');
        assert.ok(Number(duplicate.headers.get('retry-after')) >= 1);
        const original = await first;
        assert.equal(original.status, 201);
        const replay = await slow(s.url, key, 1_500, 'T4');
        assert.equal(replay.headers.get('idempotent-replayed'), 'true');
        assert.deepEqual(replay.bytes, original.bytes);
        assert.equal(s.app.executions('T4'), 1);
      },
    );

    harness.test(
      'negative control for T4: without idemkit the concurrent duplicate executes too',
      { methods: [] },
      async (s) => {
        const key = randomUUID();
        await Promise.all([slow(s.url, key, 300, 'T4-off'), slow(s.url, key, 300, 'T4-off')]);
        assert.equal(s.app.executions('T4-off'), 2);
      },
    );

    harness.test('T4 wait mode: the duplicate is held, then gets the replay', { wait: true }, async (s) => {
      const key = randomUUID();
      const first = slow(s.url, key, 800, 'T4w');
      await untilStarted(s, 'T4w');
      const held = await slow(s.url, key, 800, 'T4w');
      const original = await first;
      assert.equal(held.status, 201);
      assert.equal(held.headers.get('idempotent-replayed'), 'true');
      assert.deepEqual(held.bytes, original.bytes);
      assert.equal(s.app.executions('T4w'), 1);
    });

    defineHttpContractSyntax(harness);

    harness.test(
      'T7 a retry just inside retention replays; after retention the key executes anew',
      {},
      async (s) => {
        const key = randomUUID();
        const started = Date.now();
        await post(s.url, '/pay?short', { key, body: '{}', op: 'T7' });
        await new Promise((r) =>
          setTimeout(r, Math.max(0, SHORT_RETENTION_MS - 500 - (Date.now() - started))),
        );
        const inside = await post(s.url, '/pay?short', { key, body: '{}', op: 'T7' });
        assert.equal(inside.headers.get('idempotent-replayed'), 'true');
        await new Promise((r) => setTimeout(r, SHORT_RETENTION_MS + 300 - (Date.now() - started)));
        const after = await post(s.url, '/pay?short', { key, body: '{}', op: 'T7' });
        assert.equal(after.headers.get('idempotent-replayed'), 'false');
        assert.equal(s.app.executions('T7'), 2);
      },
    );

    harness.test(
      'T8 401, 403, 408, 409, 425, 429 and 5xx release the key: the corrected retry executes',
      {},
      async (s) => {
        for (const code of [401, 403, 408, 409, 425, 429, 500, 503]) {
          const key = randomUUID();
          const op = `T8-${code}`;
          assert.equal((await post(s.url, `/status?code=${code}`, { key, body: '{}', op })).status, code);
          const retry = await post(s.url, `/status?code=${code}`, { key, body: '{}', op });
          assert.equal(retry.headers.get('idempotent-replayed'), 'false', `${code} must not be replayed`);
          assert.equal(s.app.executions(op), 2, `${code} must be released`);
        }
      },
    );

    harness.test(
      "T8 400 and 422 from the handler are the operation's verdict: stored and replayed",
      {},
      async (s) => {
        for (const code of [400, 422]) {
          const key = randomUUID();
          const op = `T8s-${code}`;
          const first = await post(s.url, `/status?code=${code}`, { key, body: '{}', op });
          const retry = await post(s.url, `/status?code=${code}`, { key, body: '{}', op });
          assert.equal(retry.status, code);
          assert.equal(retry.headers.get('idempotent-replayed'), 'true');
          assert.deepEqual(retry.bytes, first.bytes);
          assert.equal(s.app.executions(op), 1);
        }
      },
    );

    harness.test(
      'T8 by default a keyed request without credentials gets 401 and creates no record',
      {},
      async (s) => {
        const refused = await post(s.url, '/pay', { key: randomUUID(), body: '{}', op: 'T8a', auth: null });
        assert.equal(refused.status, 401);
        assert.equal(refused.problem?.type, 'urn:idemkit:problem:principal-required');
        assert.equal(s.app.executions('T8a'), 0);
        assert.equal(s.storeCalls(), 0);
      },
    );

    harness.test(
      'with requirePrincipal: false callers without credentials share the anonymous scope',
      { requirePrincipal: false },
      async (s) => {
        const key = randomUUID();
        const first = await post(s.url, '/pay', { key, body: '{}', op: 'T8anon', auth: null });
        const retry = await post(s.url, '/pay', { key, body: '{}', op: 'T8anon', auth: null });
        assert.equal(first.status, 201);
        assert.equal(retry.headers.get('idempotent-replayed'), 'true');
        assert.equal(s.app.executions('T8anon'), 1);
      },
    );

    harness.test(
      'a thrown handler releases the key with a sanitised 500; the retry executes',
      {},
      async (s) => {
        const key = randomUUID();
        const failed = await post(s.url, '/throw', { key, body: '{}', op: 'throw' });
        assert.equal(failed.status, 500);
        assert.equal(failed.text.includes('hunter2'), false);
        await post(s.url, '/throw', { key, body: '{}', op: 'throw' });
        assert.equal(s.app.executions('throw'), 2);
      },
    );

    defineHttpContractSecurity(harness);
    defineHttpContractLimits(harness);
  });
}

/**
 * Waits (at most 5 s) until the app's handler has started `op`: the first request then holds its
 * key, and a duplicate sent now meets it in flight. (A fixed head start is not enough on a loaded
 * machine: the duplicate could claim the key first and the two would swap roles.)
 */
async function untilStarted(s: ServedApp, op: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (s.app.executions(op) === 0) {
    assert.ok(Date.now() < deadline, `the first ${op} request did not reach the handler within 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
