import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { describe, it } from 'node:test';
import { memoryStore } from '../../src/index.js';
import { faultyStore } from '../support/engine-helpers.js';
import { gatewayFor, recordingUpstream } from '../support/gateway-upstream.js';

const post = (url: string, path: string, key: string | undefined, headers: Record<string, string> = {}) =>
  fetch(`${url}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: 'Bearer u',
      ...(key ? { 'idempotency-key': key } : {}),
      ...headers,
    },
    body: '{"amount":1}',
    signal: AbortSignal.timeout(10_000),
  });

describe('gateway behaviour', () => {
  it('forwards a derived key (stable, not the client key), X-Forwarded-* and no hop-by-hop headers', async () => {
    const upstream = await recordingUpstream(() => ({ status: 201 }));
    const gateway = await gatewayFor(upstream.url);
    try {
      const key = randomUUID();
      // fetch may not set Connection; node:http may, as any HTTP/1.1 client.
      await new Promise<void>((resolve, reject) => {
        const req = request(`${gateway.url}/charges`, {
          method: 'POST',
          headers: {
            authorization: 'Bearer u',
            'idempotency-key': key,
            connection: 'keep-alive, x-hop',
            'x-hop': 'drop me',
            'x-forwarded-for': '10.9.9.9',
          },
        });
        req.on('response', (res) => res.resume().on('end', resolve));
        req.on('error', reject);
        req.end('{}');
      });

      const [received] = upstream.seen;
      assert.ok(received);
      assert.match(String(received.headers['idempotency-key']), /^idemkit-/);
      assert.notEqual(received.headers['idempotency-key'], key);
      assert.equal(received.headers['x-hop'], undefined, 'headers named by Connection are hop-by-hop');
      // The client is no trusted proxy (none are by default): its X-Forwarded-For is replaced.
      assert.equal(received.headers['x-forwarded-for'], '127.0.0.1');
      assert.equal(received.headers['x-forwarded-proto'], 'http');
      assert.match(String(received.headers['x-forwarded-host']), /^127\.0\.0\.1:/);
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });

  it('per-route rules: an uncovered route streams through, an optional route needs no key, replay headers per route', async () => {
    const upstream = await recordingUpstream(() => ({
      status: 201,
      headers: { 'x-cost': '7', 'x-other': '1' },
    }));
    const gateway = await gatewayFor(upstream.url, {
      routes: [
        { path: '/webhooks/*', methods: [] },
        { path: '/notes', required: false },
        { path: '/charges', replayHeaders: ['x-cost'] },
      ],
    });
    try {
      assert.equal(
        (await post(gateway.url, '/webhooks/stripe', undefined)).status,
        201,
        'uncovered: no key needed',
      );
      assert.equal((await post(gateway.url, '/notes', undefined)).status, 201, 'optional: no key needed');
      assert.equal((await post(gateway.url, '/charges', undefined)).status, 400, 'covered and required');
      const key = randomUUID();
      await post(gateway.url, '/charges', key);
      const replay = await post(gateway.url, '/charges', key);
      assert.equal(replay.headers.get('idempotent-replayed'), 'true');
      assert.equal(replay.headers.get('x-cost'), '7');
      assert.equal(replay.headers.get('x-other'), null);
      const elsewhere = randomUUID();
      await post(gateway.url, '/refunds', elsewhere);
      assert.equal((await post(gateway.url, '/refunds', elsewhere)).headers.get('x-cost'), null);
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });

  it('a principal header per route scopes keys: two callers with the same key get their own results', async () => {
    const upstream = await recordingUpstream(() => ({ status: 201 }));
    const gateway = await gatewayFor(upstream.url, {
      routes: [{ path: '/charges', principalHeader: 'x-api-key' }],
    });
    try {
      const key = randomUUID();
      const a = await post(gateway.url, '/charges', key, { 'x-api-key': 'A' });
      const b = await post(gateway.url, '/charges', key, { 'x-api-key': 'B' });
      assert.equal(a.headers.get('idempotent-replayed'), 'false');
      assert.equal(b.headers.get('idempotent-replayed'), 'false');
      assert.equal(upstream.seen.length, 2);
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });

  it('an unreachable upstream answers 502 and releases the key; a timeout answers 504', async () => {
    const upstream = await recordingUpstream((path) => ({
      status: 201,
      delayMs: path === '/slow' ? 2_000 : 0,
    }));
    const deadUrl = 'http://127.0.0.1:9'; // discard port: connection refused
    const dead = await gatewayFor(deadUrl);
    const slow = await gatewayFor(upstream.url, { upstreamTimeoutMs: 300 });
    try {
      const key = randomUUID();
      const refused = await post(dead.url, '/charges', key);
      assert.equal(refused.status, 502);
      assert.equal(
        ((await refused.json()) as { type: string }).type,
        'urn:idemkit:problem:upstream-unavailable',
      );
      assert.equal((await post(dead.url, '/charges', key)).status, 502, 'released: the retry ran again');
      const timedOut = await post(slow.url, '/slow', randomUUID());
      assert.equal(timedOut.status, 504);
    } finally {
      await dead.close();
      await slow.close();
      await upstream.close();
    }
  });

  // Which upstream failures hold the key and which release it: gateway-upstream-outcomes.test.ts.

  it('health says 503 while the store fails and recovers; keyed requests fail closed, uncovered ones pass', async () => {
    const upstream = await recordingUpstream(() => ({ status: 200 }));
    const faulty = faultyStore(memoryStore({ onWarning() {} }));
    const gateway = await gatewayFor(
      upstream.url,
      { storeTimeoutMs: 200 },
      faulty.store as ReturnType<typeof memoryStore>,
    );
    try {
      faulty.fail('get');
      faulty.fail('claim');
      assert.equal((await fetch(`${gateway.adminUrl}/_idemkit/health`)).status, 503);
      const keyed = await post(gateway.url, '/charges', randomUUID());
      assert.equal(keyed.status, 503);
      assert.ok(Number(keyed.headers.get('retry-after')) >= 1);
      assert.equal((await fetch(`${gateway.url}/status`)).status, 200, 'GET streams through');
      assert.equal(upstream.seen.length, 1, 'the keyed request never reached the upstream');
      faulty.heal();
      assert.equal((await fetch(`${gateway.adminUrl}/_idemkit/health`)).status, 200);
      assert.equal((await post(gateway.url, '/charges', randomUUID())).status, 200);
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });

  it('metrics count executions, replays and rejections in Prometheus text', async () => {
    const upstream = await recordingUpstream(() => ({ status: 201 }));
    const gateway = await gatewayFor(upstream.url);
    try {
      const key = randomUUID();
      await post(gateway.url, '/charges', key);
      await post(gateway.url, '/charges', key);
      await post(gateway.url, '/charges', undefined);
      const text = await (await fetch(`${gateway.adminUrl}/_idemkit/metrics`)).text();

      assert.match(text, /^idemkit_executions_total 1$/m);
      assert.match(text, /^idemkit_replays_total 1$/m);
      assert.match(text, /^idemkit_rejections_total\{code="missing-key"\} 1$/m);
      assert.match(text, /^idemkit_store_latency_seconds_count\{operation="claim"\} 2$/m);
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });
});
