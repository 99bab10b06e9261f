import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { startExample, stopExample } from '../support/example-process.js';

describe('examples/fastify', () => {
  it('a POST with a key twice executes once; the second answer is the replay', async () => {
    const { url, child } = await startExample('examples/fastify/server.ts');
    try {
      const key = randomUUID();
      const pay = (body: unknown) =>
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
      // A body the route's schema refuses claims nothing: the key is still free afterwards.
      assert.equal((await pay({ amount: 'twelve', currency: 'eur' })).status, 400);

      const first = await pay({ amount: 1200, currency: 'eur' });
      const firstBody = (await first.json()) as { id: string; providerKey: string };
      assert.equal(first.status, 201);
      assert.equal(first.headers.get('idempotent-replayed'), 'false');
      const second = await pay({ amount: 1200, currency: 'eur' });
      assert.equal(second.status, 201);
      assert.equal(second.headers.get('idempotent-replayed'), 'true');
      assert.deepEqual(await second.json(), firstBody);
      assert.equal(second.headers.get('location'), `/payments/${firstBody.id}`);

      // One execution: the first payment is pay_1 and there is no pay_2.
      assert.equal(firstBody.id, 'pay_1');
      const next = await fetch(`${url}/payments/pay_2`, { signal: AbortSignal.timeout(5_000) });
      assert.equal(next.status, 404);
    } finally {
      await stopExample(child);
    }
  });
});
