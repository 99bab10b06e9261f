import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { startExample, stopExample } from '../support/example-process.js';

describe('examples/express', () => {
  it('a POST with a key twice executes once; the second answer is the replay', async () => {
    const { url, child } = await startExample('examples/express/server.ts');
    try {
      const key = randomUUID();
      const pay = (amount = 1200) =>
        fetch(`${url}/payments`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            authorization: 'Bearer alice',
            'idempotency-key': key,
          },
          body: JSON.stringify({ amount, currency: 'eur' }),
          signal: AbortSignal.timeout(5_000),
        });
      const first = await pay();
      const firstBody = await first.json();
      assert.equal(first.status, 201);
      assert.equal(first.headers.get('idempotent-replayed'), 'false');
      assert.equal(typeof firstBody.providerKey, 'string');
      const second = await pay();
      assert.equal(second.status, 201);
      assert.equal(second.headers.get('idempotent-replayed'), 'true');
      assert.deepEqual(await second.json(), firstBody);
      assert.equal(second.headers.get('location'), `/payments/${firstBody.id}`);
      assert.equal((await pay(1300)).status, 422, 'another amount under the same key is refused');

      // One execution: only pay_1 exists.
      const get = (id: string) => fetch(`${url}/payments/${id}`, { signal: AbortSignal.timeout(5_000) });
      assert.equal(firstBody.id, 'pay_1');
      assert.equal((await get('pay_1')).status, 200);
      assert.equal((await get('pay_2')).status, 404);
    } finally {
      await stopExample(child);
    }
  });
});
