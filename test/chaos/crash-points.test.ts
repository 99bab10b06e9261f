import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type CellResult, enumerateCrashPoints, formatCells } from './crash-points.js';

/*
 * T53 crash-point enumeration: every named point of the pipeline reachable from idemkit's seams
 * (store calls before and after, the handler around its effect, the response write) × SQLite,
 * PostgreSQL, Redis, PostgreSQL in transactional mode and DynamoDB (dynalite) × {first attempt,
 * retry}: kill -9
 * exactly there, restart, let idemkit/client retry; the checker judges each cell (I1–I9). The
 * stores run side by side, each on its own SUT, store table or instance and downstream.
 */

test('T53 kill -9 at every crash point × store × {first attempt, retry}: every cell reached, no invariant violated', {
  timeout: 600_000,
}, async (t) => {
  const results: CellResult[] = (
    await Promise.all(
      (['sqlite', 'postgres', 'redis', 'pg-txn', 'dynamodb'] as const).map((store) =>
        enumerateCrashPoints(store),
      ),
    )
  ).flat();
  t.diagnostic(formatCells(results));
  for (const cell of results) {
    const name = `${cell.store} ${cell.point} ${cell.mode}`;
    assert.ok(cell.crashes >= 1, `${name}: the point was never reached`);
    assert.equal(cell.violations, 0, `${name}: ${cell.verdicts.examples.join('; ')}`);
  }
  // The retry column really crashed twice wherever a retry runs the point again.
  assert.ok(results.filter((c) => c.mode === 'retry' && c.crashes === 2).length >= 30);
});

test('T53 negative control: without idemkit, a crash after the effect is a duplicate the checker counts', {
  timeout: 120_000,
}, async () => {
  const [cell] = await enumerateCrashPoints('sqlite', {
    points: ['handler:afterEffect'],
    modes: ['first'],
    idempotency: false,
  });
  assert.ok(cell);
  assert.equal(cell.crashes, 1);
  assert.ok(cell.verdicts.duplicateExecutions >= 1, `expected a duplicate: ${JSON.stringify(cell.verdicts)}`);
  assert.ok(cell.violations >= 1);
});
