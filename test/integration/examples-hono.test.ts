import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { startExample, stopExample } from '../support/example-process.js';

describe('examples/hono', () => {
  it('a POST with a key twice executes once; the second answer is the replay', async () => {
    const { url, child } = await startExample('examples/hono/server.ts');
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
      const firstBody = await first.json();
      assert.equal(first.status, 201);
      assert.equal(first.headers.get('idempotent-replayed'), 'false');
      const second = await pay();
      assert.equal(second.status, 201);
      assert.equal(second.headers.get('idempotent-replayed'), 'true');
      assert.deepEqual(await second.json(), firstBody);
      assert.equal(second.headers.get('location'), `/payments/${firstBody.id}`);

      // One execution: the next payment gets the next id, and only one exists so far.
      const listed = await fetch(`${url}/payments/pay_2`, { signal: AbortSignal.timeout(5_000) });
      assert.equal(listed.status, 404);
      assert.equal(firstBody.id, 'pay_1');
    } finally {
      await stopExample(child);
    }
  });

  it('fetch-check.ts (the runtime-neutral check the README runs on Bun and Deno) passes on Node', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'examples/hono/fetch-check.ts'],
      {
        timeout: 30_000,
      },
    );
    assert.match(stdout, /fetch-check: ok/);
  });
});
