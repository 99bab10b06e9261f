import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { describe, it } from 'node:test';

/** Runs examples/express/server.ts as a reader would (`node --import tsx`), on a free port. */
async function startExample(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/express/server.ts'], {
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

describe('examples/express', () => {
  it('a POST with a key twice executes once; the second answer is the replay', async () => {
    const { url, child } = await startExample();
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
      await stop(child);
    }
  });
});
