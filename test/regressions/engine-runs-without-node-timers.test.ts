// Found running idemkit/hono under workerd: Workers' timers are numbers without `unref()` and
// there is no `process.emitWarning`, so the heartbeat scheduler threw right after a claim (the
// key stayed locked until its lease ran out) and the default onWarning threw at store creation.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('../support/workers-like-child.ts', import.meta.url));

it('runs a keyed request and its replay where timers have no unref() and process has no emitWarning', () => {
  const out = execFileSync(process.execPath, ['--import', 'tsx', CHILD], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  const seen = JSON.parse(out.trim().split('\n').at(-1) ?? '{}');
  assert.deepEqual(seen, { statuses: [201, 201], replayed: 'true', executions: 1, warned: true });
});
