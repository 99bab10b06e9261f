import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { startExample, stopExample } from '../support/example-process.js';

describe('examples/nestjs', () => {
  it('a POST with a key twice executes once; the second answer is the replay', async () => {
    const { url, child } = await startExample('examples/nestjs/server.ts');
    try {
      const key = randomUUID();
      const pay = () =>
        fetch(`${url}/payments`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            authorization: 'Bearer alice',
            'idempotency-key': key,
          },
          body: JSON.stringify({ amount: 1200, currency: 'eur' }),
          signal: AbortSignal.timeout(5_000),
        });
      const first = await pay();
      const firstBody = (await first.json()) as { id: string; providerKey: string };
      assert.equal(first.status, 201);
      assert.equal(first.headers.get('idempotent-replayed'), 'false');
      assert.equal(firstBody.id, 'pay_1');
      assert.ok(firstBody.providerKey, 'the handler got the context');
      const second = await pay();
      assert.equal(second.status, 201);
      assert.equal(second.headers.get('idempotent-replayed'), 'true');
      assert.deepEqual(await second.json(), firstBody);

      // One execution: only pay_1 exists.
      const get = (id: string) => fetch(`${url}/payments/${id}`, { signal: AbortSignal.timeout(5_000) });
      assert.equal((await get('pay_1')).status, 200);
      assert.equal((await get('pay_2')).status, 404);

      // Without a key the route refuses (required by default), and nothing runs.
      const keyless = await fetch(`${url}/payments`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer alice' },
        body: '{"amount":1,"currency":"eur"}',
        signal: AbortSignal.timeout(5_000),
      });
      assert.equal(keyless.status, 400);
      assert.equal((await get('pay_2')).status, 404);
    } finally {
      await stopExample(child);
    }
  });
});
