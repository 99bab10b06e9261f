import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { startExample, stopExample } from '../support/example-process.js';

describe('examples/koa', () => {
  it('a POST with a key twice executes once; the second answer is the replay', async () => {
    const { url, child } = await startExample('examples/koa/server.ts');
    try {
      const pay = (key: string, body: unknown) =>
        fetch(`${url}/payments`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            authorization: 'Bearer alice',
            'idempotency-key': key,
          },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(5_000),
        });
      const key = randomUUID();
      const first = await pay(key, { amount: 1200, currency: 'eur' });
      const firstBody = await first.json();
      assert.equal(first.status, 201);
      assert.equal(first.headers.get('idempotent-replayed'), 'false');
      const second = await pay(key, { amount: 1200, currency: 'eur' });
      assert.equal(second.status, 201);
      assert.equal(second.headers.get('idempotent-replayed'), 'true');
      assert.deepEqual(await second.json(), firstBody);
      assert.equal(second.headers.get('location'), `/payments/${firstBody.id}`);

      // One execution: the payment exists, and no second one was made.
      const stored = await fetch(`${url}/payments/pay_1`, { signal: AbortSignal.timeout(5_000) });
      assert.deepEqual(await stored.json(), firstBody);
      const none = await fetch(`${url}/payments/pay_2`, { signal: AbortSignal.timeout(5_000) });
      assert.equal(none.status, 404);

      // ctx.assert's 422 is the operation's verdict: stored and replayed too.
      const badKey = randomUUID();
      const bad = await pay(badKey, { amount: -5, currency: 'eur' });
      assert.deepEqual([bad.status, await bad.text()], [422, 'amount must be a positive integer']);
      const badAgain = await pay(badKey, { amount: -5, currency: 'eur' });
      assert.equal(badAgain.headers.get('idempotent-replayed'), 'true');
    } finally {
      await stopExample(child);
    }
  });
});
