import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createIdempotency } from '../../src/index.js';
import { migrate, postgresStore } from '../../src/stores/postgres.js';
import { startTcpProxy, type TcpProxy } from '../support/postgres-proxy.js';
import { POSTGRES_URL, postgresPool, randomTable } from '../support/postgres-service.js';
import { createEffectTable, payRequest, TXN_SECRET, transactionOf } from '../support/postgres-txn.js';

/*
 * docs/guarantees.md T37 (F3, F12) on the real server: a TCP proxy cuts the connection right after
 * every 5th COMMIT, so the client never hears the answer. Either the COMMIT reached the server
 * (it committed) or it never did (the server rolls back when the socket closes). Those clients
 * get 503 outcome-unknown; retrying with the same key then replays or runs once. Pass: the
 * effect table (the ledger of applied effects) has exactly one row per distinct key.
 */

const KEYS = 20;
const LEASE_MS = 600;
let admin: pg.Pool;
let proxy: TcpProxy;
let pool: pg.Pool;
const table = randomTable('ackloss');
const effects = randomTable('ackloss_fx');

before(async () => {
  admin = await postgresPool();
  await migrate({ pool: admin, table });
  await createEffectTable(admin, effects);
  const url = new URL(POSTGRES_URL);
  proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
  url.port = String(proxy.port);
  pool = new pg.Pool({ connectionString: url.toString(), max: 10, connectionTimeoutMillis: 1_000 });
  pool.on('error', () => {});
});
after(async () => {
  await pool?.end().catch(() => {});
  await proxy?.close();
  await admin?.query(`DROP TABLE IF EXISTS "${table}"`);
  await admin?.query(`DROP TABLE IF EXISTS "${effects}"`);
  await admin?.end();
});

async function retryUntilDone(send: () => Promise<Response>): Promise<{ last: Response; attempts: number }> {
  const deadline = performance.now() + 15_000;
  for (let attempt = 1, delay = 100; ; attempt++, delay = Math.min(delay * 2, 400)) {
    const last = await send();
    if (last.status === 201 || performance.now() > deadline) return { last, attempts: attempt };
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

for (const fate of ['delivered', 'never-sent'] as const) {
  describe(`T37 COMMIT answer lost (${fate === 'delivered' ? 'it committed' : 'it never arrived'})`, () => {
    it('those clients get 503 outcome-unknown; retries replay or run once; one effect per key', async () => {
      proxy.loseReply('COMMIT\0', 5, fate);
      const lostBefore = proxy.repliesLost;
      const executions = { count: 0 };
      const engine = createIdempotency({
        store: postgresStore({ pool, table, onWarning() {} }),
        secret: TXN_SECRET,
        transactional: true,
        leaseMs: LEASE_MS,
        sweepIntervalMs: 0,
        onWarning() {},
      });
      const handler = async (request: Request, ctx?: Parameters<typeof transactionOf>[0]) => {
        executions.count++;
        const key = request.headers.get('idempotency-key');
        await transactionOf(ctx).query(`INSERT INTO "${effects}" (key, note, pid) VALUES ($1, $2, $3)`, [
          key,
          fate,
          process.pid,
        ]);
        return Response.json({ charged: key }, { status: 201 });
      };
      const keys = Array.from({ length: KEYS }, (_, i) => `${fate}-${i}-${Math.random()}`);

      const first = [];
      for (const key of keys) first.push((await engine.handle(payRequest(key), handler)).clone());
      const unknown = first.filter((r) => r.status === 503);
      const retries = await Promise.all(
        keys.map((key) => retryUntilDone(() => engine.handle(payRequest(key), handler))),
      );

      const { rows } = await admin.query(
        `SELECT key, count(*)::int AS n FROM "${effects}" WHERE note = $1 GROUP BY key`,
        [fate],
      );
      console.log(
        `# ${fate}: ${unknown.length} of ${KEYS} first attempts got 503 outcome-unknown; ${executions.count} executions; ${rows.length} keys with effects`,
      );
      assert.equal(proxy.repliesLost - lostBefore >= KEYS / 5, true);
      assert.ok(unknown.length >= KEYS / 5 - 1, `${unknown.length} unknown`);
      for (const r of unknown) {
        assert.equal(((await r.json()) as { type: string }).type, 'urn:idemkit:problem:outcome-unknown');
      }
      assert.deepEqual(new Set(retries.map((r) => r.last.status)), new Set([201]));
      assert.equal(rows.length, KEYS);
      assert.deepEqual(new Set(rows.map((r: { n: number }) => r.n)), new Set([1]));
      if (fate === 'delivered')
        assert.equal(executions.count, KEYS, 'every lost answer had committed: retries replay');
    });
  });
}
