import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

/** Runs examples/client/agent.ts as a reader would (`node --import tsx`), killed after 30 s at most. */
function runExample(env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/client/agent.ts'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk;
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve) =>
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    }),
  );
}

const dir = mkdtempSync(join(tmpdir(), 'idemkit-example-client-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('examples/client', () => {
  it('discovers the policies, charges once through a lost answer, and does not retry the keyless refund', async () => {
    const { code, output } = await runExample({ JOURNAL: join(dir, 'journal.db') });

    assert.equal(code, 0, output);
    assert.match(output, /^POST \/charges: keyed by its Idempotency-Key header$/m);
    assert.match(output, /^POST \/charges\/\{id\}\/refunds: unsafe$/m);
    assert.match(output, /^charge ch_\w+: 201 after 2 attempts, replayed: true, key [0-9a-f-]{36}$/m);
    assert.match(output, /^refund: outcome unknown after 1 attempt, not retried$/m);
    assert.match(output, /the API executed: \{"charges":1,"refunds":1\}/);
    assert.doesNotMatch(output, /Warning/);
  });
});
