import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { type ContractHarness, DEFAULT_AUTH, post } from './http-harness.js';
import { rawUpload } from './raw-http.js';

const MiB = 1_048_576;

/** Byte-exact replays, T28 oversized results, T49 oversized bodies. */
export function defineHttpContractLimits(harness: ContractHarness): void {
  harness.test('binary bodies replay byte for byte, and a 204 replays as a 204', {}, async (s) => {
    const key = randomUUID();
    const first = await post(s.url, '/binary', { key, body: '{}', op: 'bin' });
    const replay = await post(s.url, '/binary', { key, body: '{}', op: 'bin' });
    assert.equal(first.bytes.length, 256);
    assert.deepEqual(replay.bytes, first.bytes);
    assert.equal(replay.headers.get('content-type'), 'application/octet-stream');
    const emptyKey = randomUUID();
    await post(s.url, '/empty', { key: emptyKey, body: '{}', op: 'empty' });
    const empty = await post(s.url, '/empty', { key: emptyKey, body: '{}', op: 'empty' });
    assert.equal(empty.status, 204);
    assert.equal(empty.headers.get('idempotent-replayed'), 'true');
    assert.equal(s.app.executions('bin') + s.app.executions('empty'), 2);
  });

  harness.test(
    'T28 a result above maxStoredBytes reaches the first caller whole; replays get 409 result-unavailable',
    { maxStoredBytes: 1_000 },
    async (s) => {
      const key = randomUUID();
      const first = await post(s.url, '/big?bytes=5000', { key, body: '{}', op: 'T28' });
      assert.equal(first.status, 201);
      assert.equal(first.bytes.length, 5_000);
      const replay = await post(s.url, '/big?bytes=5000', { key, body: '{}', op: 'T28' });
      assert.equal(replay.status, 409);
      assert.equal(replay.problem?.type, 'urn:idemkit:problem:result-unavailable');
      assert.equal(s.app.executions('T28'), 1);
    },
  );

  harness.test(
    'T49 bodies over maxBodyBytes get 413 before any store call, chunked or with Content-Length',
    {},
    async (s) => {
      const rssBefore = process.memoryUsage().rss;
      for (const totalBytes of [10 * MiB, 1024 * MiB]) {
        for (const chunked of [false, true]) {
          const response = await rawUpload(s.url, {
            path: '/pay',
            headers: [
              ['idempotency-key', randomUUID()],
              ['authorization', DEFAULT_AUTH],
              ['content-type', 'application/json'],
              ['x-op', 'T49'],
            ],
            totalBytes,
            chunked,
          });
          assert.equal(response.status, 413, `${totalBytes} bytes, chunked=${chunked}`);
          assert.ok(response.sentBytes < totalBytes, 'the server answered before the upload ended');
        }
      }
      assert.equal(s.storeCalls(), 0);
      assert.equal(s.app.executions('T49'), 0);
      const grownMiB = (process.memoryUsage().rss - rssBefore) / MiB;
      assert.ok(grownMiB < 64, `memory grew ${grownMiB.toFixed(1)} MiB while refusing 1 GiB uploads`);
    },
  );
}
