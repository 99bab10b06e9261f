// Issue 4 (PostgreSQL transactional mode), found by the T37 commit-ack-loss test.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import pg from 'pg';
import { createIdempotency } from '../../src/index.js';
import { migrate, postgresStore } from '../../src/stores/postgres.js';
import { startTcpProxy, type TcpProxy } from '../support/postgres-proxy.js';
import { POSTGRES_URL, postgresPool, randomTable } from '../support/postgres-service.js';
import { payRequest, TXN_SECRET } from '../support/postgres-txn.js';

/*
 * Two bugs when the connection of a transaction dies during COMMIT:
 *  1. pg emits the socket error on the checked-out client, which had no 'error' listener: Node
 *     threw it as an uncaught exception and the app's process died.
 *  2. The socket error's code (ECONNRESET) was taken for a SQLSTATE, i.e. for the server's
 *     answer "rolled back": the client got 503 store-unavailable ("nothing was applied") although
 *     the COMMIT had landed. It must be 503 outcome-unknown.
 */

let admin: pg.Pool;
let proxy: TcpProxy;
let pool: pg.Pool;
const table = randomTable('regress_commit');

before(async () => {
  admin = await postgresPool();
  await migrate({ pool: admin, table });
  const url = new URL(POSTGRES_URL);
  proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
  url.port = String(proxy.port);
  pool = new pg.Pool({ connectionString: url.toString(), max: 4, connectionTimeoutMillis: 1_000 });
  pool.on('error', () => {});
});
after(async () => {
  await pool?.end().catch(() => {});
  await proxy?.close();
  await admin?.query(`DROP TABLE IF EXISTS "${table}"`);
  await admin?.end();
});

it('a COMMIT whose answer is lost leaves the process up and answers 503 outcome-unknown; the retry replays', async () => {
  proxy.loseReply('COMMIT\0', 1, 'delivered');
  const uncaught: unknown[] = [];
  const record = (error: unknown) => uncaught.push(error);
  process.on('uncaughtException', record);
  const engine = createIdempotency({
    store: postgresStore({ pool, table, onWarning() {} }),
    secret: TXN_SECRET,
    transactional: true,
    sweepIntervalMs: 0,
    onWarning() {},
  });
  const key = `lost-${Math.random()}`;
  const handler = async () => Response.json({ ok: true }, { status: 201 });

  try {
    const first = await engine.handle(payRequest(key), handler);
    await new Promise((resolve) => setTimeout(resolve, 50));
    proxy.loseReply('COMMIT\0', 1_000_000, 'delivered');
    const retry = await engine.handle(payRequest(key), handler);

    assert.deepEqual(uncaught, []);
    assert.equal(first.status, 503);
    assert.equal(((await first.json()) as { type: string }).type, 'urn:idemkit:problem:outcome-unknown');
    assert.equal(retry.status, 201);
    assert.equal(retry.headers.get('idempotent-replayed'), 'true');
  } finally {
    process.off('uncaughtException', record);
  }
});
