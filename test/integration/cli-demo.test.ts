import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { runDemo } from '../../src/cli/demo/run.js';
import { runCli } from '../support/cli.js';

/*
 * The demo is the newcomer's first proof, so it is tested like a feature: through the gateway 0
 * duplicate charges, and directly more than 0 (the negative control: the faults really happen
 * after the charge, and the clients really retry).
 */

const dir = mkdtempSync(join(tmpdir(), 'idemkit-demo-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Reads one row of the side-by-side table: [without, with]. */
function row(stdout: string, label: string): [string, string] {
  const line = stdout.split('\n').find((l) => l.trimStart().startsWith(label));
  assert.ok(line, `the table has a "${label}" row:\n${stdout}`);
  const cells = line
    .trim()
    .slice(label.length)
    .trim()
    .split(/\s{3,}/);
  return [cells[0] as string, cells[1] as string];
}

describe('idemkit demo', () => {
  it('prints progress and the table: duplicates without idemkit, none through the gateway; cleans up', async () => {
    const { code, stdout, stderr } = await runCli(
      ['demo', '--operations', '200', '--concurrency', '8', '--fault-rate', '0.25', '--timeout', '500ms'],
      {},
      60_000,
    );

    assert.equal(code, 0, stderr);
    assert.match(stdout, /^idemkit demo: 200 charges per side, 8 at once, 25% of responses lost/);
    assert.match(stdout, /without: +\d+\/200 done, \d+ lost, \d+ duplicates? +│ +gateway: +\d+\/200 done/);
    assert.match(stdout, /without idemkit +with idemkit gateway/);
    const [directDuplicates, gatewayDuplicates] = row(stdout, 'DUPLICATE CHARGES').map(Number);
    const [directFaults, gatewayFaults] = row(stdout, 'responses lost (injected faults)').map(Number);
    const [, replays] = row(stdout, 'replays received (Idempotent-Replayed)').map(Number);
    assert.equal(gatewayDuplicates, 0);
    assert.ok((directDuplicates as number) > 0, 'negative control: without idemkit, retries charge twice');
    assert.ok((directFaults as number) > 0 && (gatewayFaults as number) > 0);
    assert.ok((replays as number) > 0);
    assert.deepEqual(row(stdout, 'operations (charges asked for)'), ['200', '200']);
    assert.deepEqual(row(stdout, 'charges made')[1], '200');
    assert.match(row(stdout, 'latency per request p99')[1], /^\d+ ms$/);
    assert.match(stdout, /Through the gateway: 0 duplicates; \d+ retries got the original response back/);
    assert.ok(
      !existsSync('.idemkit') || !readdirSync('.idemkit').some((f) => f.startsWith('demo-')),
      'the demo database is removed',
    );
  });

  it('runDemo stops at --duration, counts every charge, and removes its folder when it made it', async () => {
    const folder = join(dir, 'made-by-demo');

    const result = await runDemo({
      operations: 100_000,
      concurrency: 4,
      faultRate: 0.3,
      durationMs: 1_500,
      timeoutMs: 300,
      dir: folder,
    });

    assert.ok(result.direct.operations < 100_000 && result.direct.operations > 0);
    assert.ok(result.elapsedMs < 10_000, `took ${result.elapsedMs} ms`);
    assert.equal(result.gateway.duplicates, 0);
    // Every operation was charged: exactly once through the gateway, once plus its duplicates directly.
    assert.equal(result.gateway.charges, result.gateway.operations);
    assert.equal(result.direct.charges, result.direct.operations + result.direct.duplicates);
    assert.equal(existsSync(folder), false);
  });
});
