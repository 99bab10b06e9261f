// Audit: in the fetch flow the handler's response body was read outside the try, so a body that
// failed midway ended neither with commit nor with abort: the heartbeat renewed the claim for the
// life of the process, every retry got 409 in-progress, and the in-flight slot leaked.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type HandlerContext, withIdempotency } from '../../src/adapters/fetch.js';
import { memoryStore } from '../../src/index.js';
import { type ServedFetch, serveFetch } from '../../src/testing/serve-fetch.js';

const quiet = { onWarning() {} };

/** A 201 whose body sends a few bytes, then errors. */
function brokenStream(): Response {
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode('{"partial":'));
      queueMicrotask(() => controller.error(new Error('disk read failed at /srv/secret/path')));
    },
  });
  return new Response(body, { status: 201, headers: { 'content-type': 'application/json' } });
}

/** A loopback upstream that promises 1 000 bytes, sends 10, then resets the connection. */
let upstream: ReturnType<typeof createServer>;
let upstreamUrl: string;
before(async () => {
  upstream = createServer((_req, res) => {
    res.writeHead(201, { 'content-type': 'application/json', 'content-length': '1000' });
    res.write('{"partial"');
    setTimeout(() => res.socket?.resetAndDestroy(), 20);
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/`;
});
after(() => {
  upstream.closeAllConnections();
  upstream.close();
});

type Failing = (ctx: HandlerContext | undefined) => Response | Promise<Response>;

/** Serves a handler that fails its body on the first execution only; later ones answer 201. */
async function serve(fail: Failing): Promise<{ served: ServedFetch; executions: () => number }> {
  let executions = 0;
  const handler = withIdempotency(
    async (_request, ctx) => {
      executions++;
      return executions === 1 ? fail(ctx) : Response.json({ ok: true }, { status: 201 });
    },
    { store: memoryStore(quiet), maxInFlightPerPrincipal: 1, sweepIntervalMs: 0, ...quiet },
  );
  return { served: await serveFetch(handler), executions: () => executions };
}

function post(url: string, key: string) {
  return fetch(`${url}/pay`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer u1', 'idempotency-key': key },
    body: '{}',
    signal: AbortSignal.timeout(5_000),
  });
}

describe('a response body that fails midway ends the execution', () => {
  const cases: [string, Failing][] = [
    ['a ReadableStream that errors', () => brokenStream()],
    ['fetch() of an upstream that resets mid-body', () => fetch(upstreamUrl)],
  ];
  for (const [name, fail] of cases) {
    it(`${name}: sanitised 500, the slot is freed and the retry executes again`, async () => {
      const { served, executions } = await serve(fail);
      try {
        const key = randomUUID();
        const failed = await post(served.url, key);
        const text = await failed.text();
        assert.equal(failed.status, 500);
        assert.equal(failed.headers.get('content-type'), 'application/problem+json');
        assert.match(text, /urn:idemkit:problem:handler-error/);
        assert.equal(text.includes('/srv/secret'), false);

        const otherKey = await post(served.url, randomUUID());
        await otherKey.arrayBuffer();
        assert.equal(otherKey.status, 201, 'the in-flight slot of the principal is free again');

        const retry = await post(served.url, key);
        await retry.arrayBuffer();
        assert.equal(retry.status, 201, 'the key was released, not held in progress');
        assert.equal(retry.headers.get('idempotent-replayed'), 'false');
        assert.equal(executions(), 3);
      } finally {
        await served.close();
      }
    });
  }

  it('after ctx.effectsStarted() the key is held as uncertain: the retry gets 409 outcome-uncertain', async () => {
    const { served, executions } = await serve((ctx) => {
      ctx?.effectsStarted();
      return brokenStream();
    });
    try {
      const key = randomUUID();
      const failed = await post(served.url, key);
      await failed.arrayBuffer();
      assert.equal(failed.status, 500);

      const retry = await post(served.url, key);
      const problem = (await retry.json()) as { type: string };
      assert.equal(retry.status, 409);
      assert.equal(problem.type, 'urn:idemkit:problem:outcome-uncertain');
      const otherKey = await post(served.url, randomUUID());
      await otherKey.arrayBuffer();
      assert.equal(otherKey.status, 201, 'the in-flight slot of the principal is free again');
      assert.equal(executions(), 2);
    } finally {
      await served.close();
    }
  });

  it('a handler that returns something other than a Response also frees the key', async () => {
    const { served, executions } = await serve(() => undefined as unknown as Response);
    try {
      const key = randomUUID();
      const failed = await post(served.url, key);
      await failed.arrayBuffer();
      assert.equal(failed.status, 500);
      const retry = await post(served.url, key);
      await retry.arrayBuffer();
      assert.equal(retry.status, 201);
      assert.equal(executions(), 2);
    } finally {
      await served.close();
    }
  });
});
