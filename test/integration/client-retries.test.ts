import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  ClientError,
  type ClientOptions,
  createClient,
  KeyReusedError,
  OutcomeUnknownError,
  type RetryEvent,
} from '../../src/client/index.js';
import { naivePost, seededRandom } from '../support/client-naive.js';
import { type Action, type ClientTestServer, startClientTestServer } from '../support/client-server.js';

/*
 * The client against a real server over real sockets: idemkit in front of a charging handler,
 * and the faults of a real network and real servers (test/support/client-server.ts). The
 * property every test checks: each logical operation completes once and none runs twice.
 */

let server: ClientTestServer;
before(async () => {
  server = await startClientTestServer({ slowMs: 600 });
});
after(() => server.close());

function clientFor(options: ClientOptions = {}) {
  return createClient({
    baseUrl: server.url,
    headers: { authorization: 'Bearer customer-1' },
    timeoutMs: 300,
    retries: { limit: 4, baseDelayMs: 5, maxDelayMs: 20 },
    ...options,
  });
}

const charge = (operation: string, amount = 500) => ({ method: 'POST', json: { operation, amount } });
const seenOf = (operation: string) => server.seen.filter((s) => s.operation === operation);

describe('client retries against idemkit over real sockets', () => {
  it('a response lost after the commit is retried with the same key and body, and replayed', async () => {
    server.script(({ n }) => (n === 1 ? 'drop' : 'ok'));

    const response = await clientFor().fetch('/charges', charge('lost-1'));

    assert.equal(response.status, 201);
    assert.equal(response.idemkit.attempts, 2);
    assert.equal(response.idemkit.replayed, true);
    assert.equal(server.ledger.get('lost-1'), 1);
    const seen = seenOf('lost-1');
    assert.deepEqual(
      seen.map((s) => [s.headers['idempotency-key'], s.body]),
      [0, 1].map(() => [response.idemkit.key, '{"operation":"lost-1","amount":500}']),
    );
    assert.equal((await response.json()).operation, 'lost-1');
  });

  it('an attempt that hangs past its timeout is retried and gets the replay', async () => {
    server.script(({ n }) => (n === 1 ? 'hang' : 'ok'));

    const response = await clientFor().fetch('/charges', charge('hang-1'));

    assert.deepEqual([response.status, response.idemkit.attempts, response.idemkit.replayed], [201, 2, true]);
    assert.equal(server.ledger.get('hang-1'), 1);
  });

  it('a retry while the first attempt still runs gets idemkit’s 409 in-progress, waits its Retry-After, then the replay', async () => {
    server.script(({ n }) => (n === 1 ? 'slow' : 'ok'));
    const retries: RetryEvent[] = [];

    const response = await clientFor({ timeoutMs: 200, onRetry: (e) => retries.push(e) }).fetch(
      '/charges',
      charge('slow-1'),
    );

    assert.equal(response.status, 201);
    assert.equal(response.idemkit.replayed, true);
    assert.equal(server.ledger.get('slow-1'), 1);
    const conflict = retries.find((e) => e.status === 409);
    assert.ok(conflict, `a 409 was retried: ${JSON.stringify(retries.map((e) => e.status))}`);
    assert.ok(conflict.delayMs >= 1_000, `waited Retry-After: 1 (${conflict.delayMs} ms)`);
  });

  it('409 in-progress, 503 with Retry-After as seconds and as an HTTP date, 429 and 500 are all retried', async () => {
    const at = new Date(Date.now() + 3_000).toUTCString(); // whole seconds: 2-3 s from now
    const script: Action[] = [
      { status: 409, problem: 'in-progress', retryAfter: '0' },
      { status: 503, retryAfter: '0' },
      { status: 503, retryAfter: at },
      { status: 429 },
      { status: 500 },
    ];
    server.script(({ n }) => script[n - 1] ?? 'ok');
    const retries: RetryEvent[] = [];

    const response = await clientFor({
      retries: { limit: 5, baseDelayMs: 5 },
      onRetry: (e) => retries.push(e),
    }).fetch('/charges', charge('statuses-1'));

    assert.equal(response.status, 201);
    assert.equal(response.idemkit.attempts, 6);
    assert.equal(response.idemkit.replayed, false); // nothing ran before the last attempt
    assert.deepEqual(
      retries.map((e) => e.status),
      [409, 503, 503, 429, 500],
    );
    const afterDate = retries[2]?.delayMs ?? 0;
    assert.ok(afterDate > 1_000 && afterDate <= 3_000, `waited until the date: ${afterDate} ms`);
    assert.equal(server.ledger.get('statuses-1'), 1);
  });

  it('400, 413 and a plain 422 are answers, never retried', async () => {
    server.script(({ operation }) =>
      operation === 'bad-1'
        ? 'bad-request'
        : operation === 'big-1'
          ? { status: 413, problem: 'payload-too-large' }
          : { status: 422 },
    );
    const client = clientFor();

    for (const [operation, status] of [
      ['bad-1', 400],
      ['big-1', 413],
      ['invalid-1', 422],
    ] as const) {
      const response = await client.fetch('/charges', charge(operation));

      assert.deepEqual([response.status, response.idemkit.attempts], [status, 1], operation);
      assert.equal(seenOf(operation).length, 1);
    }
  });

  it('the same key with other parameters is 422 key-reused, thrown as KeyReusedError', async () => {
    server.script(() => 'ok');
    const client = clientFor();
    await client.fetch('/charges', { ...charge('reused-1', 500), idempotencyKey: 'order-77' });

    const second = client.fetch('/charges', { ...charge('reused-1', 900), idempotencyKey: 'order-77' });

    await assert.rejects(second, (error: ClientError) => {
      assert.ok(error instanceof KeyReusedError);
      assert.equal(error.key, 'order-77');
      assert.equal(error.response?.status, 422);
      assert.match(error.message, /new key/);
      return true;
    });
    assert.equal(server.ledger.get('reused-1'), 1);
  });

  it('a Retry-After beyond maxRetryAfterMs stops at once and says why', async () => {
    server.script(() => ({ status: 503, retryAfter: '120' }));

    const response = await clientFor({ retries: { limit: 4, maxRetryAfterMs: 10_000 } }).fetch(
      '/charges',
      charge('later-1'),
    );

    assert.equal(response.status, 503);
    assert.equal(response.idemkit.stopped, 'retry-after-too-long');
    assert.equal(response.idemkit.retryAfterMs, 120_000);
    assert.equal(response.idemkit.attempts, 1);
  });

  it('a handler that failed after its effects began ends in OutcomeUnknownError, never a second run', async () => {
    server.script(({ n }) => (n === 1 ? 'uncertain' : 'ok'));

    const attempt = clientFor().fetch('/charges', charge('uncertain-1'));

    await assert.rejects(attempt, (error: ClientError) => {
      assert.ok(error instanceof OutcomeUnknownError, String(error));
      assert.equal(error.response?.status, 409);
      return true;
    });
    assert.equal(server.ledger.get('uncertain-1'), 1);
  });

  it('an idempotent GET is retried without a key', async () => {
    server.script(({ n }) => (n === 1 ? { status: 502 } : 'ok'));

    const response = await clientFor().fetch('/charges/ch_1');

    assert.equal(response.idemkit.attempts, 2);
    assert.equal(response.idemkit.key, undefined);
    assert.ok(
      server.seen.filter((s) => s.url === '/charges/ch_1').every((s) => !s.headers['idempotency-key']),
    );
  });

  it('a body factory is called for every attempt, and the key is the same on each', async () => {
    server.script(({ n }) => (n === 1 ? 'drop' : 'ok'));
    let calls = 0;

    const response = await clientFor().fetch('/charges', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: () => {
        calls++;
        return new Blob(['{"operation":"factory-1","amount":5}']);
      },
    });

    assert.equal(response.status, 201);
    assert.equal(calls, 2);
    assert.equal(
      new Set(seenOf('factory-1').map((s) => `${s.headers['idempotency-key']} ${s.body}`)).size,
      1,
    );
    assert.equal(server.ledger.get('factory-1'), 1);
  });

  it('a custom fetch gets every attempt, with the call’s own fetch options', async () => {
    const calls: RequestInit[] = [];
    const client = clientFor({
      fetch: async (url, init) => {
        calls.push(init ?? {});
        return calls.length === 1 ? new Response(null, { status: 503 }) : fetch(url, init);
      },
    });
    server.script(() => 'ok');

    const response = await client.fetch('/charges', {
      ...charge('custom-fetch-1'),
      redirect: 'manual',
      keepalive: false,
    });

    assert.equal(response.status, 201);
    assert.deepEqual(
      calls.map((init) => [init.redirect, init.keepalive, init.method]),
      [0, 1].map(() => ['manual', false, 'POST']),
    );
  });

  it('the caller’s AbortSignal ends the operation at once, also during backoff', async () => {
    server.script(() => ({ status: 503, retryAfter: '5' }));
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const started = performance.now();

    await assert.rejects(
      clientFor().fetch('/charges', { ...charge('abort-1'), signal: controller.signal }),
      (error: Error) => error.name === 'AbortError',
    );
    assert.ok(performance.now() - started < 2_000);
  });
});

describe('client limits against a server that always fails', () => {
  it('retries: the last answer comes back after limit + 1 attempts, marked retries-exhausted', async () => {
    server.script(() => ({ status: 503 }));

    const response = await clientFor({ retries: { limit: 3, baseDelayMs: 1 } }).fetch(
      '/charges',
      charge('down-1'),
    );

    assert.deepEqual(
      [response.status, response.idemkit.attempts, response.idemkit.stopped],
      [503, 4, 'retries-exhausted'],
    );
  });

  it('deadline: no attempt starts after it, whatever the retry limit', async () => {
    server.script(() => ({ status: 503 }));

    const started = performance.now();
    // The last attempt gets only what is left of the deadline as its timeout: when it is answered
    // in time the answer comes back marked deadline-exceeded; on a loaded machine it may be cut
    // by the deadline instead, and then there is no answer to give: a ClientError, same code.
    const stop = await clientFor({
      retries: { limit: 1_000, baseDelayMs: 40, maxDelayMs: 40 },
      deadlineMs: 400,
    })
      .fetch('/charges', charge('down-2'))
      .then(
        (response) => ({ stopped: response.idemkit.stopped, attempts: response.idemkit.attempts }),
        (error: unknown) => {
          if (!(error instanceof ClientError)) throw error;
          return { stopped: error.code, attempts: error.attempts };
        },
      );
    const elapsedMs = performance.now() - started;

    assert.equal(stop.stopped, 'deadline-exceeded');
    assert.ok(stop.attempts > 1 && stop.attempts < 100, `${stop.attempts} attempts`);
    assert.ok(elapsedMs < 1_000, `${elapsedMs} ms`);
  });

  it('budget: once the client’s bucket is empty, no operation retries (no retry storm)', async () => {
    server.script(() => ({ status: 503 }));
    const client = clientFor({
      retries: { limit: 100, baseDelayMs: 1 },
      budget: { capacity: 20, retryCost: 5 },
    });

    const first = await client.fetch('/charges', charge('storm-1'));
    const second = await client.fetch('/charges', charge('storm-2'));

    assert.deepEqual([first.idemkit.attempts, first.idemkit.stopped], [5, 'budget-exhausted']);
    assert.deepEqual([second.idemkit.attempts, second.idemkit.stopped], [1, 'budget-exhausted']);
  });

  it('no answer at all: a ClientError with the key, and the operation ran once', async () => {
    server.script(() => 'drop');

    const attempt = clientFor({ retries: { limit: 2, baseDelayMs: 1 } }).fetch('/charges', charge('void-1'));

    await assert.rejects(attempt, (error: ClientError) => {
      assert.equal(error.code, 'retries-exhausted');
      assert.equal(error.attempts, 3);
      assert.equal(error.key, seenOf('void-1')[0]?.headers['idempotency-key']);
      return true;
    });
    assert.equal(server.ledger.get('void-1'), 1);
  });
});

describe('client: unsafe operations (no key support)', () => {
  const unsafe = (operation: string) => ({ ...charge(operation), policy: 'unsafe' as const });

  it('is never retried once the request may have reached the server: OutcomeUnknownError', async () => {
    server.script(() => 'drop');

    await assert.rejects(clientFor().fetch('/charges', unsafe('unsafe-1')), (error: ClientError) => {
      assert.ok(error instanceof OutcomeUnknownError);
      assert.equal(error.attempts, 1);
      assert.match(error.message, /may have been executed/);
      return true;
    });
    assert.equal(server.ledger.get('unsafe-1'), 1);
    assert.equal(seenOf('unsafe-1')[0]?.headers['idempotency-key'], undefined);
  });

  it('is retried after answers that say it was not processed (503, 429), not after a 502', async () => {
    server.script(({ operation, n }) =>
      n > 1 ? 'ok' : operation === 'unsafe-2' ? { status: 503 } : { status: 502 },
    );

    const retried = await clientFor().fetch('/charges', unsafe('unsafe-2'));
    const stopped = await clientFor().fetch('/charges', unsafe('unsafe-3'));

    assert.deepEqual([retried.status, retried.idemkit.attempts], [201, 2]);
    assert.deepEqual(
      [stopped.status, stopped.idemkit.attempts, stopped.idemkit.stopped],
      [502, 1, 'unsafe-operation'],
    );
  });

  it('is retried when the connection was refused: the request never left', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));

    const attempt = clientFor({
      baseUrl: `http://127.0.0.1:${port}`,
      retries: { limit: 2, baseDelayMs: 1 },
    }).fetch('/charges', unsafe('refused-1'));

    await assert.rejects(
      attempt,
      (error: ClientError) => error.code === 'retries-exhausted' && error.attempts === 3,
    );
  });
});

describe('client under mixed faults, with a negative control', () => {
  // The same script for both sides: an operation's faults depend on its number, not its prefix.
  const faults: Action[] = [
    'drop',
    'hang',
    { status: 503, retryAfter: '0' },
    { status: 429 },
    { status: 409, problem: 'in-progress', retryAfter: '0' },
    { status: 500 },
    'ok',
    'ok',
  ];
  const scripted = ({ operation, n }: { operation: string | undefined; n: number }): Action => {
    if (n > 3) return 'ok';
    const random = seededRandom(`${operation?.split(':')[1]}#${n}`);
    return faults[Math.floor(random() * faults.length)] as Action;
  };
  const operations = Array.from({ length: 40 }, (_, i) => i);

  async function inParallel(work: (i: number) => Promise<void>) {
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < operations.length) await work(next++);
      }),
    );
  }

  it('every operation completes once; none runs twice', async () => {
    server.script(scripted);
    const client = clientFor({ retries: { limit: 6, baseDelayMs: 5, maxDelayMs: 20 } });
    let replays = 0;

    await inParallel(async (i) => {
      const response = await client.fetch('/charges', charge(`mixed:${i}`));
      assert.equal(response.status, 201, `mixed:${i}`);
      if (response.idemkit.replayed) replays++;
    });

    assert.deepEqual(
      operations.map((i) => server.ledger.get(`mixed:${i}`)),
      operations.map(() => 1),
    );
    assert.ok(replays > 0, 'some answers were replays of a lost first answer');
  });

  it('negative control: a client that draws a new key per attempt charges twice under the same faults', async () => {
    server.script(scripted);

    await inParallel(async (i) => {
      await naivePost(`${server.url}/charges`, JSON.stringify({ operation: `naive:${i}`, amount: 500 }), {
        headers: { authorization: 'Bearer customer-1' },
      });
    });

    const duplicated = operations.filter((i) => (server.ledger.get(`naive:${i}`) ?? 0) > 1);
    assert.ok(duplicated.length > 0, 'new keys per attempt turn lost answers into second charges');
  });
});
