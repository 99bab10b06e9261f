import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { spawnGateway } from '../support/gateway-process.js';

const dir = mkdtempSync(join(tmpdir(), 'idemkit-gw-proc-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const freshDb = () => join(dir, `gateway-${++files}.db`);

/**
 * A payments upstream. `effects` counts charges applied; with `dedupe` it applies a forwarded
 * Idempotency-Key once and answers every repeat with the first result (the documented recipe for
 * absorbing a re-run after a gateway crash).
 */
async function paymentsUpstream(options: { delayMs: number; dedupe: boolean }) {
  let effects = 0;
  const seen = new Map<string, Promise<string>>();
  const arrived: string[] = [];
  const server: Server = createServer((req, res) => {
    const key = req.headers['idempotency-key'];
    arrived.push(String(key));
    const apply = async () => {
      effects++;
      const body = JSON.stringify({ charge: effects });
      await new Promise((r) => setTimeout(r, options.delayMs));
      return body;
    };
    let result: Promise<string>;
    if (options.dedupe && typeof key === 'string') {
      result = seen.get(key) ?? apply();
      seen.set(key, result);
    } else result = apply();
    req.resume();
    void result.then((body) => res.writeHead(201, { 'content-type': 'application/json' }).end(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    effects: () => effects,
    arrived: () => arrived.length,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function charge(url: string, key: string) {
  return fetch(`${url}/charges`, {
    method: 'POST',
    headers: { 'idempotency-key': key, 'content-type': 'application/json', authorization: 'Bearer demo' },
    body: '{"amount":1000}',
    signal: AbortSignal.timeout(10_000),
  });
}

async function waitUntil(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * The crashed claim's lease. Long enough that a restarted gateway (a tsx child, slow to start on a
 * loaded machine) still finds the key held; the retry then waits until the lease has lapsed.
 */
const LEASE_MS = 5_000;

/** kill -9 the gateway while the upstream works; restart; retry after the lease → one effect. */
async function crashAndRetry(forwardKey: 'derived' | 'none') {
  const upstream = await paymentsUpstream({ delayMs: 1_500, dedupe: true });
  const sqlitePath = freshDb();
  const settings = { upstream: upstream.url, sqlitePath, leaseMs: LEASE_MS, forwardKey };
  const first = await spawnGateway(settings);
  const key = randomUUID();
  try {
    const lost = charge(first.url, key).catch(() => 'connection lost');
    await waitUntil(() => upstream.arrived() === 1);
    // The claim was written before the upstream saw the request, and the crash leaves no heartbeat.
    const leaseLapsesBy = Date.now() + LEASE_MS;
    await first.kill9();
    assert.equal(await lost, 'connection lost');

    const second = await spawnGateway(settings);
    try {
      const early = await charge(second.url, key);
      const earlyWithinLease = Date.now() < leaseLapsesBy;
      await new Promise((r) => setTimeout(r, Math.max(0, leaseLapsesBy - Date.now()) + 200));
      const retry = await charge(second.url, key);
      const replay = await charge(second.url, key);
      return {
        early: early.status,
        earlyWithinLease,
        retry: retry.status,
        replay,
        effects: upstream.effects(),
      };
    } finally {
      await second.stop();
    }
  } finally {
    await upstream.close();
  }
}

describe('gateway processes', () => {
  it('kill -9 during a slow upstream call, restart, retry after the lease: charged exactly once', async () => {
    const outcome = await crashAndRetry('derived');

    assert.ok(outcome.earlyWithinLease, 'the restarted gateway answered within the lease');
    assert.equal(outcome.early, 409, 'within the lease the crashed claim still holds the key');
    assert.equal(outcome.retry, 201);
    assert.equal(outcome.replay.headers.get('idempotent-replayed'), 'true');
    assert.equal(outcome.effects, 1);
  });

  it('negative control: without the forwarded key the upstream cannot absorb the re-run (2 charges)', async () => {
    const outcome = await crashAndRetry('none');

    assert.equal(outcome.retry, 201);
    assert.equal(outcome.effects, 2);
  });

  it('two gateway processes on one SQLite file execute concurrent duplicates once', async () => {
    const upstream = await paymentsUpstream({ delayMs: 300, dedupe: false });
    const sqlitePath = freshDb();
    const gateways = [
      await spawnGateway({ upstream: upstream.url, sqlitePath }),
      await spawnGateway({ upstream: upstream.url, sqlitePath }),
    ];
    try {
      const key = randomUUID();
      const responses = await Promise.all(
        Array.from({ length: 40 }, (_, i) => charge((gateways[i % 2] as { url: string }).url, key)),
      );
      const statuses = responses.map((r) => r.status);

      assert.equal(upstream.effects(), 1);
      assert.ok(
        statuses.every((s) => s === 201 || s === 409),
        statuses.join(','),
      );
      assert.ok(statuses.includes(201));
      for (const g of gateways) {
        const replay = await charge(g.url, key);
        assert.equal(replay.headers.get('idempotent-replayed'), 'true');
      }
    } finally {
      for (const g of gateways) await g.stop();
      await upstream.close();
    }
  });

  it('negative control: two gateways with private memory stores execute the duplicate twice', async () => {
    const upstream = await paymentsUpstream({ delayMs: 300, dedupe: false });
    const gateways = [
      await spawnGateway({ upstream: upstream.url }),
      await spawnGateway({ upstream: upstream.url }),
    ];
    try {
      const key = randomUUID();
      await Promise.all(gateways.map((g) => charge(g.url, key)));

      assert.equal(upstream.effects(), 2);
    } finally {
      for (const g of gateways) await g.stop();
      await upstream.close();
    }
  });
});
