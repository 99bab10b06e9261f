import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type FaultProxy, startFaultProxy } from '../../src/cli/demo/fault-proxy.js';
import { createClient } from '../../src/client/index.js';
import { startGateway } from '../../src/gateway/server.js';
import { GATEWAY_DEFAULTS, type RunningGateway } from '../../src/gateway/types.js';
import { naivePost, seededRandom } from '../support/client-naive.js';
import { recordingUpstream } from '../support/gateway-upstream.js';
import { tempSqliteStores } from '../support/temp-sqlite.js';

/*
 * The client against idemkit's own gateway (SQLite store, as by default) in front of an API with
 * no idempotency of its own, behind a network that loses a third of the answers after the work
 * was done (the demo's fault proxy: dropped, hung and truncated answers).
 */

type Upstream = Awaited<ReturnType<typeof recordingUpstream>>;
let upstream: Upstream;
let gateway: RunningGateway;
let proxy: FaultProxy;

before(async () => {
  upstream = await recordingUpstream();
  gateway = await startGateway({
    config: {
      ...GATEWAY_DEFAULTS,
      upstream: upstream.url,
      port: 0,
      adminPort: 0,
      replayHeaders: [],
      routes: [],
      keyBodyField: 'request_id',
    },
    store: tempSqliteStores('idemkit-client-gw-')().store,
    engine: { onWarning() {} },
  });
  proxy = await startFaultProxy({
    target: gateway.url,
    faultRate: 0.35,
    random: seededRandom('gateway-faults'),
  });
});
after(async () => {
  await proxy.close();
  await gateway.close();
  await upstream.close();
});

/** Executions the upstream saw per operation id. */
function executions(prefix: string, count: number): number[] {
  const seen = new Map<string, number>();
  for (const request of upstream.seen) {
    const operation = (JSON.parse(request.body || '{}') as { operation?: string }).operation;
    if (operation !== undefined) seen.set(operation, (seen.get(operation) ?? 0) + 1);
  }
  return Array.from({ length: count }, (_, i) => seen.get(`${prefix}-${i}`) ?? 0);
}

async function inParallel(count: number, work: (i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < count) await work(next++);
    }),
  );
}

describe('client → lossy network → idemkit gateway → API without idempotency', () => {
  // No baseUrl: absolute URLs work as with fetch.
  const client = createClient({
    timeoutMs: 300,
    retries: { limit: 8, baseDelayMs: 5, maxDelayMs: 40 },
    headers: { authorization: 'Bearer customer-9' },
  });

  it('every operation reaches the API exactly once, through the Idempotency-Key header', async () => {
    let replays = 0;

    await inParallel(40, async (i) => {
      const response = await client.fetch(`${proxy.url}/charges`, {
        method: 'POST',
        json: { operation: `gw-${i}`, amount: 100 },
      });
      assert.equal(response.status, 201);
      if (response.idemkit.replayed) replays++;
    });

    assert.deepEqual(executions('gw', 40), Array(40).fill(1));
    assert.ok(proxy.faults.drop + proxy.faults.hang + proxy.faults.truncate > 0, 'faults were injected');
    assert.ok(replays > 0, 'lost answers came back as replays');
  });

  it('and through an AIP-155 request_id body field the gateway reads (--key-body-field)', async () => {
    const bodyKeyed = createClient({
      timeoutMs: 300,
      retries: { limit: 8, baseDelayMs: 5, maxDelayMs: 40 },
      headers: { authorization: 'Bearer customer-9' },
      baseUrl: proxy.url,
      routes: [
        {
          method: 'POST',
          path: '/operations',
          policy: { kind: 'keyed', carrier: { in: 'body', name: 'request_id' } },
        },
      ],
    });

    await inParallel(20, async (i) => {
      const response = await bodyKeyed.fetch('/operations', {
        method: 'POST',
        json: { operation: `rid-${i}` },
      });
      assert.equal(response.status, 201);
      assert.equal(response.idemkit.policy.kind, 'keyed');
    });

    assert.deepEqual(executions('rid', 20), Array(20).fill(1));
    const forwarded = upstream.seen.find((s) => s.body.includes('"rid-0"'));
    assert.match(forwarded?.body ?? '', /^\{"request_id":"[0-9a-f-]{36}","operation":"rid-0"\}$/);
  });

  it('negative control: new keys per attempt through the same network and gateway charge twice', async () => {
    await inParallel(40, async (i) => {
      await naivePost(`${proxy.url}/charges`, JSON.stringify({ operation: `naive-gw-${i}`, amount: 100 }), {
        attempts: 9,
        headers: { authorization: 'Bearer customer-9' },
      });
    });

    assert.ok(
      executions('naive-gw', 40).some((count) => count > 1),
      'a lost answer retried under a new key ran twice',
    );
  });
});
