import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { ClientConfigError, createClient } from '../../src/client/index.js';
import { type ClientTestServer, startClientTestServer } from '../support/client-server.js';

/*
 * The journal's promise: an operation outlives a kill -9 of its process. A child process starts a
 * journaled charge and is killed (SIGKILL, by its PID) before the answer arrives; the next
 * process opening the journal resends it with the same key and body, and the server's ledger
 * shows one execution.
 */

const CHILD = fileURLToPath(new URL('../support/client-journal-child.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'idemkit-journal-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let server: ClientTestServer;
before(async () => {
  server = await startClientTestServer({ slowMs: 800 });
});
after(() => server.close());

interface ResumeSummary {
  status: string;
  key: string;
  method: string;
  url: string;
  response?: { status: number; replayed: boolean };
}

function child(settings: object): { process: ChildProcess; output: Promise<string>; exited: Promise<void> } {
  const proc = spawn(process.execPath, ['--import', 'tsx', CHILD], {
    env: { ...process.env, IDEMKIT_TEST_JOURNAL: JSON.stringify(settings) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let text = '';
  proc.stdout?.on('data', (chunk) => {
    text += chunk;
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return { process: proc, output: exited.then(() => text), exited };
}

/** Polls (every 10 ms, at most `ms`) until `check` holds. */
async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Starts a journaled charge in a child and kills it with SIGKILL once the server has executed it. */
async function sendAndKill(journal: string, operation: string): Promise<void> {
  const sender = child({ mode: 'send', journal, url: server.url, operation });
  await until(() => server.ledger.get(operation) === 1, 20_000, `${operation} to execute`);
  sender.process.kill('SIGKILL');
  await sender.exited; // reaped: its PID no longer exists
  assert.equal(sender.process.signalCode, 'SIGKILL');
}

async function resumeInChild(journal: string, extra: object = {}): Promise<ResumeSummary[]> {
  const output = await child({ mode: 'resume', journal, url: server.url, ...extra }).output;
  const line = output.split('\n').find((l) => l.startsWith('RESULT '));
  assert.ok(line, `the resuming process printed its result:\n${output}`);
  return JSON.parse(line.slice('RESULT '.length)) as ResumeSummary[];
}

function rows(journal: string): { key: string; headers: string; body: Buffer }[] {
  const db = new Database(journal, { readonly: true });
  try {
    return db.prepare('SELECT key, headers, body FROM idemkit_client_journal').all() as never;
  } finally {
    db.close();
  }
}

describe('client journal: kill -9 and resume', () => {
  it('answer lost with its process: the next process resends the same key and body, the server replays, one execution', async () => {
    const journal = join(dir, 'lost-answer.db');
    server.script(({ operation, n }) => (operation === 'kill-1' && n === 1 ? 'hang' : 'ok'));

    await sendAndKill(journal, 'kill-1');
    const left = rows(journal);
    const results = await resumeInChild(journal);

    assert.equal(left.length, 1, 'the dead process left its operation in the journal');
    assert.ok(!left[0]?.headers.toLowerCase().includes('authorization'), 'no credentials in the journal');
    assert.match(left[0]?.headers ?? '', /x-request-source/);
    assert.equal(statSync(journal).mode & 0o777, 0o600);
    assert.equal(results.length, 1);
    assert.deepEqual(results[0]?.response, { status: 201, replayed: true });
    assert.equal(results[0]?.status, 'completed');
    const attempts = server.seen.filter((s) => s.operation === 'kill-1');
    assert.equal(attempts.length, 2);
    assert.deepEqual(
      new Set(attempts.map((s) => `${s.headers['idempotency-key']} ${s.body}`)),
      new Set([`${results[0]?.key} ${left[0]?.body.toString()}`]),
    );
    assert.equal(attempts[1]?.headers.authorization, 'Bearer journal-customer');
    assert.equal(server.ledger.get('kill-1'), 1);
    assert.equal(rows(journal).length, 0, 'a resumed operation leaves the journal');
  });

  it('killed while the first attempt still runs: the resend waits out 409 in-progress, then gets the replay', async () => {
    const journal = join(dir, 'still-running.db');
    server.script(({ operation, n }) => (operation === 'kill-2' && n === 1 ? 'slow' : 'ok'));

    await sendAndKill(journal, 'kill-2');
    const results = await resumeInChild(journal);

    assert.deepEqual(
      results.map((r) => [r.status, r.response]),
      [['completed', { status: 201, replayed: true }]],
    );
    assert.equal(server.ledger.get('kill-2'), 1);
  });

  it('an entry older than maxAgeMs is dropped, never resent (past the server’s retention it would run again)', async () => {
    const journal = join(dir, 'expired.db');
    server.script(({ operation, n }) => (operation === 'kill-3' && n === 1 ? 'hang' : 'ok'));
    await sendAndKill(journal, 'kill-3');

    const results = await resumeInChild(journal, { maxAgeMs: 1 });

    assert.deepEqual(
      results.map((r) => r.status),
      ['expired'],
    );
    assert.equal(server.seen.filter((s) => s.operation === 'kill-3').length, 1);
    assert.equal(rows(journal).length, 0);
  });
});

describe('client journal in one process', () => {
  it('a settled call leaves nothing behind; redactHeaders and credentials are never written', async () => {
    const journal = join(dir, 'settled.db');
    server.script(() => 'hang');
    const client = createClient({
      baseUrl: server.url,
      headers: { authorization: 'Bearer x', cookie: 'session=1', 'x-api-key': 'secret' },
      journal: { path: journal, redactHeaders: ['X-Api-Key'] },
      // Long enough that the journal is read while the call is still open on a loaded machine.
      timeoutMs: 1_000,
      retries: 0,
    });

    const pending = client.fetch('/charges', { method: 'POST', json: { operation: 'settle-1' } });
    let settled = false;
    pending.then(
      () => {
        settled = true;
      },
      () => {
        settled = true;
      },
    );
    await until(() => server.ledger.get('settle-1') === 1, 5_000, 'settle-1 to execute');
    const during = rows(journal);
    const openWhileRead = !settled;
    await assert.rejects(pending); // no answer within the timeout, no retries left
    const afterwards = rows(journal);
    await client.close();

    assert.ok(openWhileRead, 'the journal was read while the call was still open');
    assert.equal(during.length, 1);
    assert.doesNotMatch(during[0]?.headers ?? '', /authorization|cookie|x-api-key|secret/i);
    assert.equal(afterwards.length, 0);
  });

  it('resume() leaves the operations of live processes alone', async () => {
    const journal = join(dir, 'live.db');
    server.script(({ operation }) => (operation === 'live-1' ? 'slow' : 'ok'));
    const running = createClient({ baseUrl: server.url, headers: { authorization: 'Bearer x' }, journal });
    const other = createClient({ baseUrl: server.url, headers: { authorization: 'Bearer x' }, journal });

    const inFlight = running.fetch('/charges', { method: 'POST', json: { operation: 'live-1' } });
    await until(() => server.ledger.get('live-1') === 1, 5_000, 'live-1 to execute');
    const resumed = await other.resume();
    const pending = await other.pending();
    await inFlight;

    assert.deepEqual(resumed, []);
    assert.equal(pending.length, 1);
    assert.equal(server.seen.filter((s) => s.operation === 'live-1').length, 1);
    await running.close();
    await other.close();
  });

  it('reads and unsafe operations are not journaled; a journaled body must be bytes, not a factory', async () => {
    const journal = join(dir, 'kinds.db');
    server.script(() => 'ok');
    const client = createClient({ baseUrl: server.url, headers: { authorization: 'Bearer x' }, journal });

    await client.fetch('/charges/ch_1');
    await client.fetch('/charges', { method: 'POST', json: { operation: 'unsafe-j' }, policy: 'unsafe' });
    const factory = client.fetch('/charges', { method: 'POST', body: () => '{"operation":"factory-j"}' });

    await assert.rejects(factory, ClientConfigError);
    assert.equal((await client.pending()).length, 0);
    await client.close();
  });
});
