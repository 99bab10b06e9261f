import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { describe, it } from 'node:test';

/** Runs examples/fastify/server.ts as a reader would (`node --import tsx`), on a free port. */
async function startExample(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/fastify/server.ts'], {
    env: { ...process.env, PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the example did not start within 15 s:\n${output}`)),
      15_000,
    );
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const found = /payments API on (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (found?.[1]) {
        clearTimeout(timer);
        resolve(found[1]);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the example exited with ${code}:\n${output}`));
    });
  });
  return { url, child };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

describe('examples/fastify', () => {
  it('a POST with a key twice executes once; the second answer is the replay', async () => {
    const { url, child } = await startExample();
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
      await stop(child);
    }
  });
});
