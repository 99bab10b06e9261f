import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

/*
 * Regression: the Redis store's wake-up subscriber (a duplicate connection made on the first
 * wait) kept the process alive after the app closed its own client, so an app, or a test file
 * that never called store.close(), never exited.
 */
const CHILD = fileURLToPath(new URL('../support/redis-wait-exit-child.ts', import.meta.url));

function runChild(kind: string): Promise<{ code: number | null; out: string; exited: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, kind], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve({ code: null, out, exited: false });
    }, 15_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, exited: true });
    });
  });
}

describe('Redis wake-up subscriber', () => {
  for (const kind of ['node-redis', 'ioredis']) {
    it(`${kind}: an app that waited once and closed its client exits without store.close()`, async () => {
      const run = await runChild(kind);
      assert.ok(run.exited, `the process was still running 15 s later:\n${run.out}`);
      assert.equal(run.code, 0, run.out);
      assert.match(run.out, /done/);
    });
  }
});
