// principal() and tenant() may answer at once or with a promise; begin() treats both alike:
// the same scopes, the same refusals, and a throw or a rejection from either function rejects
// begin() without claiming anything.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createIdempotency, type EngineRequest, memoryStore } from '../../src/index.js';
import { countingStore } from '../../src/testing/store-spy.js';
import { request, response } from '../support/engine-helpers.js';

const quiet = { onWarning() {} };
type CallerFn = (native: unknown, request: EngineRequest) => string | undefined | Promise<string | undefined>;

/** The header a test request names its caller (or tenant) in, answered both ways. */
function forms(header: string): [string, CallerFn][] {
  const read = (request: EngineRequest) => (request.headers as Record<string, string>)[header];
  return [
    ['at once', (_native, request) => read(request)],
    ['a promise', async (_native, request) => read(request)],
  ];
}

const as = (caller: string, tenant = 't1') =>
  request({
    headers: {
      'content-type': 'application/json',
      'idempotency-key': 'k1',
      'x-caller': caller,
      'x-tenant': tenant,
    },
  });

describe('principal() and tenant() answered at once or by a promise', () => {
  for (const [form, principal] of forms('x-caller')) {
    it(`principal() ${form}: its callers' records never meet, a retry of one replays`, async () => {
      const idem = createIdempotency({ store: memoryStore(quiet), principal, sweepIntervalMs: 0, ...quiet });
      const first = await idem.begin(as('alice'));
      assert.equal(first.kind, 'execute');
      await first.commit(response(201, '{"who":"alice"}'));

      const other = await idem.begin(as('bob'));
      assert.equal(other.kind, 'execute', 'another principal with the same key runs its own request');
      await other.abort();
      const retry = await idem.begin(as('alice'));
      assert.equal(retry.kind, 'replay');
      assert.equal(Buffer.from(retry.response.body).toString(), '{"who":"alice"}');

      const nobody = await idem.begin(as(''));
      assert.equal(nobody.kind, 'reject');
      assert.equal(nobody.code, 'principal-required');
    });
  }

  for (const [form, tenant] of forms('x-tenant')) {
    it(`tenant() ${form}: two tenants of one principal never meet`, async () => {
      const idem = createIdempotency({ store: memoryStore(quiet), tenant, sweepIntervalMs: 0, ...quiet });
      const withAuth = (t: string) =>
        request({
          headers: {
            'content-type': 'application/json',
            authorization: 'Bearer u1',
            'idempotency-key': 'k2',
            'x-tenant': t,
          },
        });
      const a = await idem.begin(withAuth('shop-a'));
      assert.equal(a.kind, 'execute');
      await a.commit(response());
      const b = await idem.begin(withAuth('shop-b'));
      assert.equal(b.kind, 'execute', 'the same key under another tenant runs its own request');
      await b.abort();
      const again = await idem.begin(withAuth('shop-a'));
      assert.equal(again.kind, 'replay');
    });
  }

  it('tenant() is not asked when the principal is refused', async () => {
    let asked = 0;
    const idem = createIdempotency({
      store: memoryStore(quiet),
      principal: () => undefined,
      tenant: () => {
        asked++;
        return 't';
      },
      ...quiet,
    });
    const d = await idem.begin(request());
    assert.equal(d.kind, 'reject');
    assert.equal(asked, 0);
  });

  const failures: [string, Partial<Record<'principal' | 'tenant', CallerFn>>][] = [
    [
      'principal() throws',
      {
        principal: () => {
          throw new Error('auth service down');
        },
      },
    ],
    [
      'principal() rejects',
      {
        principal: async () => {
          throw new Error('auth service down');
        },
      },
    ],
    [
      'tenant() throws',
      {
        tenant: () => {
          throw new Error('auth service down');
        },
      },
    ],
    ['tenant() rejects', { tenant: () => Promise.reject(new Error('auth service down')) }],
  ];
  for (const [what, fns] of failures) {
    it(`${what}: begin() rejects with that error and nothing is claimed`, async () => {
      const spy = countingStore(memoryStore(quiet));
      const idem = createIdempotency({ store: spy.store, ...fns, sweepIntervalMs: 0, ...quiet });
      let pending: Promise<unknown> | undefined;
      assert.doesNotThrow(() => {
        pending = idem.begin(request());
      }, 'a failure is a rejected promise, never a synchronous throw');
      await assert.rejects(pending as Promise<unknown>, /auth service down/);
      assert.equal(spy.calls(), 0);
    });
  }
});
