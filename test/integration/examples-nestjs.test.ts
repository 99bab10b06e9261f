import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { describe, it } from 'node:test';

/** Runs examples/nestjs/server.ts as a reader would (`node --import tsx`), on a free port. */
async function startExample(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/nestjs/server.ts'], {
    env: { ...process.env, PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the example did not start within 20 s:\n${output}`)),
      20_000,
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

describe('examples/nestjs', () => {
  it('a POST with a key twice executes once; the second answer is the replay', async () => {
    const { url, child } = await startExample();
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
      await stop(child);
    }
  });
});
