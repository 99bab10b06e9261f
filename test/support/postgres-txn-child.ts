import { createIdempotency } from '../../src/index.js';
import { postgresStore } from '../../src/stores/postgres.js';
import { commitGate } from './postgres-gate.js';
import { postgresPool } from './postgres-service.js';
import { payRequest, TXN_SECRET, transactionOf } from './postgres-txn.js';

/*
 * A server process in transactional mode that the crash tests kill (docs/guarantees.md T14 pg-txn,
 * T24). It runs one keyed request whose handler inserts an effect row through ctx.transaction and
 * then stops at the crash point, printing one line, and waits there to be killed:
 *   beforeCommit: the completion CAS has run, COMMIT is held (the record row is locked)
 *                 → `HELD <backend pid>`
 *   afterCommit:  COMMIT has landed, the response is never written → `COMMITTED <status>`
 * env IDEMKIT_TEST_TXN_CHILD: { table, effects, key, crashAt, leaseMs, idleInTransactionMs? }
 */

interface ChildSettings {
  table: string;
  effects: string;
  key: string;
  crashAt: 'beforeCommit' | 'afterCommit';
  leaseMs: number;
  /** Sets idle_in_transaction_session_timeout on this process's connections only. */
  idleInTransactionMs?: number;
}

const settings = JSON.parse(process.env.IDEMKIT_TEST_TXN_CHILD ?? '{}') as ChildSettings;
const pool = await postgresPool({
  max: 4,
  ...(settings.idleInTransactionMs === undefined
    ? {}
    : { options: `-c idle_in_transaction_session_timeout=${settings.idleInTransactionMs}` }),
});
const gate = commitGate(pool);
const store = postgresStore({
  pool: settings.crashAt === 'beforeCommit' ? gate.pool : pool,
  table: settings.table,
  onWarning() {},
});
const engine = createIdempotency({
  store,
  secret: TXN_SECRET,
  transactional: true,
  leaseMs: settings.leaseMs,
  sweepIntervalMs: 0,
  onWarning() {},
});

let backendPid = 0;
const done = engine.handle(payRequest(settings.key), async (_request, ctx) => {
  const tx = transactionOf(ctx);
  backendPid = Number((await tx.query('SELECT pg_backend_pid() AS pid')).rows[0]?.pid);
  await tx.query(`INSERT INTO "${settings.effects}" (key, note, pid) VALUES ($1, 'child', $2)`, [
    settings.key,
    process.pid,
  ]);
  return Response.json({ charged: settings.key, by: 'child' }, { status: 201 });
});

if (settings.crashAt === 'beforeCommit') {
  await gate.held;
  process.stdout.write(`HELD ${backendPid}\n`);
} else {
  const response = await done;
  process.stdout.write(`COMMITTED ${response.status}\n`);
}
// The crash point: wait to be killed (bounded, so a lost parent cannot leave this running).
setTimeout(() => process.exit(3), 60_000);
