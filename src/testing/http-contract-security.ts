import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { DEFAULT_REPLAY_HEADERS } from '../core/response.js';
import { type ContractHarness, post, type Reply } from './http-harness.js';
import { INTERNAL_ERROR_TEXT } from './reference-app.js';

/** Headers any HTTP server adds by itself, plus the replay marker and no-store. */
const FRAMING = [
  'date',
  'connection',
  'keep-alive',
  'content-length',
  'transfer-encoding',
  'idempotent-replayed',
  'cache-control',
];

/** T43 isolation, T44 secrets and cookies, T50-sec stored errors. */
export function defineHttpContractSecurity(harness: ContractHarness): void {
  harness.test(
    'T43 tenants and principals sending the same key and body get independent executions',
    {},
    async (s) => {
      const key = randomUUID();
      const callers = [
        { tenant: 'A', auth: 'Bearer A1' },
        { tenant: 'A', auth: 'Bearer A2' },
        { tenant: 'B', auth: 'Bearer A1' },
      ];
      const send = (c: { tenant: string; auth: string }) =>
        post(s.url, '/pay', {
          key,
          body: '{"amount":5}',
          op: 'T43',
          auth: c.auth,
          headers: { 'x-tenant': c.tenant },
        });
      const firsts: Reply[] = [];
      for (const c of callers) firsts.push(await send(c));
      assert.equal(s.app.executions('T43'), 3);
      for (const [i, c] of callers.entries()) {
        const first = firsts[i];
        assert.ok(first);
        assert.equal(first.headers.get('idempotent-replayed'), 'false');
        const body = JSON.parse(first.text) as { tenant: string; authorization: string };
        assert.deepEqual([body.tenant, body.authorization], [c.tenant, c.auth]);
        const replay = await send(c);
        assert.deepEqual(replay.bytes, first.bytes, 'each caller gets back its own response');
      }
      assert.equal(s.app.executions('T43'), 3);
    },
  );

  harness.test(
    'T44 replays carry only allowlisted headers: no Set-Cookie, no internal headers',
    {},
    async (s) => {
      const key = randomUUID();
      const first = await post(s.url, '/secret', { key, body: '{}', op: 'T44' });
      assert.ok(first.headers.get('set-cookie')?.includes('sid=secret'));
      const replay = await post(s.url, '/secret', { key, body: '{}', op: 'T44' });
      assert.equal(replay.headers.get('idempotent-replayed'), 'true');
      assert.equal(replay.headers.get('set-cookie'), null);
      const allowed = new Set([...DEFAULT_REPLAY_HEADERS, ...FRAMING]);
      for (const [name] of replay.headers) assert.ok(allowed.has(name), `${name} must not be replayed`);
      assert.equal(s.app.executions('T44'), 1);
    },
  );

  harness.test(
    'T50-sec a stored handler error is problem+json without stack, paths or internal text',
    {},
    async (s) => {
      const key = randomUUID();
      const first = await post(s.url, '/throw?store5xx', { key, body: '{}', op: 'T50' });
      const replay = await post(s.url, '/throw?store5xx', { key, body: '{}', op: 'T50' });
      for (const reply of [first, replay]) {
        assert.equal(reply.status, 500);
        assert.ok(!reply.text.includes(INTERNAL_ERROR_TEXT));
        assert.ok(!/hunter2|\/srv\/|\bat \w+ \(|\.ts:\d+/.test(reply.text), reply.text);
      }
      assert.deepEqual(replay.bytes, first.bytes);
      assert.equal(s.app.executions('T50'), 1);
    },
  );
}
