import type pg from 'pg';
import type { HandlerContext } from '../../src/core/execution.js';
import { hashCredential, scopeHash } from '../../src/core/scope.js';
import type { PostgresTransactionClient } from '../../src/stores/postgres.js';

/*
 * Shared pieces of the transactional-mode tests: an effect table (the "charges" a handler writes
 * through ctx.transaction, with no unique constraint, so a duplicate effect stays visible) and a
 * fetch handler that writes one row per execution.
 */

export const TXN_SECRET = 'transactional-suite-secret-0123456789';

export async function createEffectTable(pool: pg.Pool, table: string): Promise<void> {
  await pool.query(`CREATE TABLE "${table}" (key text NOT NULL, note text NOT NULL, pid int NOT NULL)`);
}

export async function effectRows(pool: pg.Pool, table: string, key: string): Promise<string[]> {
  const { rows } = await pool.query(`SELECT note FROM "${table}" WHERE key = $1 ORDER BY note`, [key]);
  return rows.map((row: { note: string }) => row.note);
}

const AUTH = 'Bearer txn-user';

/** A keyed POST as a client retries it: same key, same body, same credentials every time. */
export function payRequest(key: string, base = 'http://idemkit.test'): Request {
  return new Request(`${base}/pay`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: AUTH,
      'idempotency-key': key,
    },
    body: JSON.stringify({ amount: 1000, currency: 'eur' }),
  });
}

/** The store key the engine derives for `payRequest(key)` (default tenant and principal). */
export function recordKeyOf(key: string): string {
  return scopeHash({ tenant: '', principal: hashCredential(AUTH), method: 'POST', path: '/pay', key });
}

export function transactionOf(ctx: HandlerContext | undefined): PostgresTransactionClient {
  const client = ctx?.transaction as PostgresTransactionClient | undefined;
  if (!client) throw new Error('no ctx.transaction: the engine is not in transactional mode');
  return client;
}

/** A handler that inserts one effect row through the transaction and answers 201. */
export function chargeHandler(table: string, note: string, executions: { count: number }) {
  return async function charge(request: Request, ctx?: HandlerContext): Promise<Response> {
    executions.count++;
    const key = request.headers.get('idempotency-key') ?? '';
    await transactionOf(ctx).query(`INSERT INTO "${table}" (key, note, pid) VALUES ($1, $2, $3)`, [
      key,
      note,
      process.pid,
    ]);
    return Response.json({ charged: key, note }, { status: 201 });
  };
}
