import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const MODEL = 'model/lease.pml';

/**
 * Generates the verifier with spin, compiles it with gcc and runs the exhaustive safety search.
 * spin and gcc come from Debian (.ci/run installs spin): a missing tool fails the test.
 */
async function verify(defines: string[]): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'idemkit-spin-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  copyFileSync(MODEL, join(dir, 'lease.pml'));
  await run('spin', [...defines, '-a', 'lease.pml'], { cwd: dir });
  await run('gcc', ['-O2', '-DSAFETY', '-o', 'pan', 'pan.c'], { cwd: dir });
  // pan exits non-zero when it finds an error; the report is on stdout either way.
  const result = await run('./pan', ['-m100000'], { cwd: dir, maxBuffer: 16 * 1024 * 1024 }).catch(
    (error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }),
  );
  return result.stdout;
}

describe('model check of the lease protocol (spin)', { timeout: 180_000 }, () => {
  it('three owners, lapsing leases and crashes: no two completions, no stale write accepted, no acknowledged record lost', async () => {
    const report = await verify([]);
    assert.match(report, /errors: 0/, report);
    assert.doesNotMatch(report, /search not completed|out of memory|max search depth too small/, report);
    const states = Number(/(\d+) states, stored/.exec(report)?.[1]);
    assert.ok(states > 1_000_000, `explored ${states} states`);
  });

  it('refutes the variant whose completion does not check the owner token (negative control)', async () => {
    const report = await verify(['-DNOFENCE']);
    assert.match(report, /assertion violated \(mygen==generation\)/, report);
    assert.doesNotMatch(report, /errors: 0/);
  });
});
