import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { describe, it } from 'node:test';
import { Hono } from 'hono';
import { setCookie } from 'hono/cookie';
import { cors } from 'hono/cors';
import { HTTPException } from 'hono/http-exception';
import { stream } from 'hono/streaming';
import { validator } from 'hono/validator';
import {
  type HonoIdempotencyOptions,
  type IdempotencyVariables,
  idempotency,
} from '../../src/adapters/hono.js';
import { createIdempotency, memoryStore } from '../../src/index.js';
import { countingStore } from '../../src/testing/index.js';
import { clientGone } from '../support/client-gone.js';
import { serveHono } from '../support/hono-reference.js';

type App = Hono<{ Variables: IdempotencyVariables }>;

const AUTH = 'Bearer hono-user';

function baseOptions(): HonoIdempotencyOptions {
  return { store: memoryStore({ onWarning() {} }), sweepIntervalMs: 0, onWarning() {} };
}

interface Sent {
  status: number;
  headers: Headers;
  text: string;
}

async function send(
  url: string,
  path: string,
  o: { key?: string; body?: BodyInit; method?: string; headers?: Record<string, string>; auth?: string } = {},
): Promise<Sent> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    authorization: o.auth ?? AUTH,
    ...o.headers,
  };
  if (o.key !== undefined) headers['idempotency-key'] = o.key;
  const method = o.method ?? 'POST';
  const init: RequestInit & { duplex?: 'half' } = { method, headers, signal: AbortSignal.timeout(5_000) };
  if (method !== 'GET' && method !== 'HEAD') init.body = o.body ?? '{}';
  if (o.body instanceof ReadableStream) init.duplex = 'half';
  const response = await fetch(`${url}${path}`, init);
  return { status: response.status, headers: response.headers, text: await response.text() };
}

/** What @hono/node-server hands a handler as c.env. */
interface NodeEnv {
  outgoing: ServerResponse;
}

/** Serves `app` for one test body and always closes it. */
async function withServer(
  app: { fetch: (r: Request) => Response | Promise<Response> },
  body: (url: string) => Promise<void>,
) {
  const server = await serveHono(app);
  try {
    await body(server.url);
  } finally {
    await server.close();
  }
}

describe('idemkit/hono: the context on the request', () => {
  it('c.var.idempotency carries downstreamKey (stable across retries), fencingToken, signal, effectsStarted', async () => {
    const app: App = new Hono();
    const seen: { key: string; fencing: number; signal: boolean; same: boolean }[] = [];
    app.use('/payments/*', idempotency(baseOptions()));
    app.post('/payments/charge', (c) => {
      const ctx = c.var.idempotency;
      assert.ok(ctx, 'a keyed POST runs under a claim');
      seen.push({
        key: ctx.downstreamKey(),
        fencing: ctx.fencingToken,
        signal: ctx.signal instanceof AbortSignal,
        same: c.get('idempotency') === ctx && typeof ctx.effectsStarted === 'function',
      });
      // The first attempt fails momentarily (503 releases the key), the retry succeeds.
      return seen.length === 1 ? c.json({ retry: true }, 503) : c.json({ charged: true }, 201);
    });
    await withServer(app, async (url) => {
      const key = randomUUID();
      assert.equal((await send(url, '/payments/charge', { key })).status, 503);
      const second = await send(url, '/payments/charge', { key });
      assert.equal(second.status, 201);
      const third = await send(url, '/payments/charge', { key });
      assert.equal(third.headers.get('idempotent-replayed'), 'true');
    });
    assert.equal(seen.length, 2, 'the 503 released the key, the 201 was stored and replayed');
    assert.equal(seen[0]?.key, seen[1]?.key, 'the downstream key is the same for the retry');
    for (const s of seen) {
      assert.equal(typeof s.fencing, 'number');
      assert.ok(s.signal && s.same);
    }
  });

  it('inline on one route, with an engine shared between two routes; principal() receives the Context', async () => {
    const engine = createIdempotency({
      store: memoryStore({ onWarning() {} }),
      sweepIntervalMs: 0,
      // The Context reaches principal(): an auth middleware's variable names the caller.
      principal: (c) => (c as { get(name: string): string | undefined }).get('user'),
    });
    const app = new Hono<{ Variables: IdempotencyVariables & { user: string } }>();
    app.use('*', async (c, next) => {
      c.set('user', c.req.header('x-user') ?? '');
      await next();
    });
    let executions = 0;
    app.post('/a', idempotency(engine), (c) =>
      c.json({ n: ++executions, key: c.var.idempotency?.downstreamKey() }),
    );
    app.post('/b', idempotency(engine), (c) => c.json({ n: ++executions }));
    await withServer(app, async (url) => {
      const key = randomUUID();
      const alice = await send(url, '/a', { key, headers: { 'x-user': 'alice' } });
      const aliceAgain = await send(url, '/a', { key, headers: { 'x-user': 'alice' } });
      const bob = await send(url, '/a', { key, headers: { 'x-user': 'bob' } });
      assert.equal(aliceAgain.text, alice.text);
      assert.equal(aliceAgain.headers.get('idempotent-replayed'), 'true');
      assert.notEqual(bob.text, alice.text, "bob's key is his own");
      assert.equal(JSON.parse(alice.text).key.length > 0, true);
      // The same key on the other route is another operation.
      assert.equal(
        (await send(url, '/b', { key, headers: { 'x-user': 'alice' } })).headers.get('idempotent-replayed'),
        'false',
      );
      // Without a user the principal is '' and the engine refuses (requirePrincipal).
      assert.equal((await send(url, '/a', { key: randomUUID() })).status, 401);
    });
    assert.equal(executions, 3);
  });
});

describe('idemkit/hono: negative control', () => {
  function paymentsApp(withIdempotency: boolean): { app: App; executions: () => number } {
    const app: App = new Hono();
    let executions = 0;
    if (withIdempotency) app.use('/payments', idempotency(baseOptions()));
    app.post('/payments', async (c) => c.json({ n: ++executions, body: await c.req.json() }, 201));
    return { app, executions: () => executions };
  }

  it('without the middleware a retried POST executes twice; with it, once and the retry is a replay', async () => {
    for (const withIdempotency of [false, true]) {
      const { app, executions } = paymentsApp(withIdempotency);
      await withServer(app, async (url) => {
        const key = randomUUID();
        await send(url, '/payments', { key, body: '{"amount":10}' });
        const retry = await send(url, '/payments', { key, body: '{"amount":10}' });
        assert.equal(retry.status, 201);
        assert.equal(retry.headers.get('idempotent-replayed'), withIdempotency ? 'true' : null);
      });
      assert.equal(executions(), withIdempotency ? 1 : 2, `withIdempotency=${withIdempotency}`);
    }
  });
});

describe('idemkit/hono: throws', () => {
  it('a thrown Error releases the key with a sanitised 500 even when onError would leak; onError still runs', async () => {
    const app: App = new Hono();
    let executions = 0;
    let onErrorCalls = 0;
    app.onError((error, c) => {
      onErrorCalls++;
      return c.text(`${error.message}\n${error.stack}`, 500);
    });
    app.use('*', idempotency(baseOptions()));
    app.post('/charge', (c) => {
      executions++;
      setCookie(c, 'half', 'done');
      c.header('x-internal', 'node-7');
      throw new Error('db password hunter2 at /srv/app/charge.ts');
    });
    await withServer(app, async (url) => {
      const key = randomUUID();
      for (let i = 0; i < 2; i++) {
        const reply = await send(url, '/charge', { key });
        assert.equal(reply.status, 500);
        assert.match(reply.headers.get('content-type') ?? '', /^application\/problem\+json/);
        assert.doesNotMatch(reply.text, /hunter2|charge\.ts|at /);
        assert.deepEqual(
          reply.headers.getSetCookie(),
          [],
          "the failed attempt's headers are not on the problem",
        );
        assert.equal(reply.headers.get('x-internal'), null);
      }
    });
    assert.equal(executions, 2, 'the key was released: the retry executed');
    assert.equal(onErrorCalls, 2);
  });

  it('a thrown HTTPException is an answer: captured, stored and replayed like a returned response', async () => {
    const app: App = new Hono();
    let executions = 0;
    app.use('*', idempotency(baseOptions()));
    app.post('/declined', () => {
      executions++;
      throw new HTTPException(402, { message: 'card declined' });
    });
    app.post('/invalid', () => {
      executions++;
      const res = new Response('{"error":"amount"}', { headers: { 'content-type': 'application/json' } });
      throw new HTTPException(422, { res });
    });
    app.post('/unavailable', () => {
      executions++;
      throw new HTTPException(503, { message: 'try later' });
    });
    await withServer(app, async (url) => {
      const key = randomUUID();
      const first = await send(url, '/declined', { key });
      assert.deepEqual(
        [first.status, first.text, first.headers.get('idempotent-replayed')],
        [402, 'card declined', 'false'],
      );
      const replay = await send(url, '/declined', { key });
      assert.deepEqual(
        [replay.status, replay.text, replay.headers.get('idempotent-replayed')],
        [402, 'card declined', 'true'],
      );

      const invalidKey = randomUUID();
      await send(url, '/invalid', { key: invalidKey });
      const invalidReplay = await send(url, '/invalid', { key: invalidKey });
      assert.equal(invalidReplay.status, 422);
      assert.equal(invalidReplay.text, '{"error":"amount"}');
      assert.equal(invalidReplay.headers.get('content-type'), 'application/json');
      assert.equal(invalidReplay.headers.get('idempotent-replayed'), 'true');

      // Its status goes through classify like any answer: a 503 releases the key.
      const laterKey = randomUUID();
      assert.equal((await send(url, '/unavailable', { key: laterKey })).text, 'try later');
      assert.equal(
        (await send(url, '/unavailable', { key: laterKey })).headers.get('idempotent-replayed'),
        'false',
      );
    });
    assert.equal(executions, 4, 'declined once, invalid once, unavailable twice');
  });

  it('a throw on a request idemkit does not cover keeps onError’s answer', async () => {
    const app: App = new Hono();
    app.onError((_error, c) => c.text('app says no', 418));
    app.use('*', idempotency(baseOptions()));
    app.put('/thing', () => {
      throw new Error('not covered');
    });
    app.get('/thing', (c) => c.json({ ctx: c.var.idempotency === undefined ? 'none' : 'set' }));
    await withServer(app, async (url) => {
      const put = await send(url, '/thing', { key: randomUUID(), method: 'PUT' });
      assert.deepEqual([put.status, put.text], [418, 'app says no']);
      const get = await send(url, '/thing', { key: randomUUID(), method: 'GET' });
      assert.deepEqual(
        [get.status, get.text, get.headers.get('idempotent-replayed')],
        [200, '{"ctx":"none"}', null],
      );
    });
  });
});

describe('idemkit/hono: the body', () => {
  it('handlers read the body after the middleware did (c.req.json, c.req.text)', async () => {
    const app: App = new Hono();
    app.use('*', idempotency(baseOptions()));
    app.post('/json', async (c) => c.json({ got: await c.req.json() }));
    app.post('/text', async (c) => c.text(await c.req.text()));
    await withServer(app, async (url) => {
      const json = await send(url, '/json', { key: randomUUID(), body: '{"amount":12,"currency":"eur"}' });
      assert.deepEqual(JSON.parse(json.text), { got: { amount: 12, currency: 'eur' } });
      const raw = '{ "spaces" :  1 ,"big": 12345678901234567890 }';
      assert.equal((await send(url, '/text', { key: randomUUID(), body: raw })).text, raw);
    });
  });

  it('a validator before the middleware already read the body: the bytes come from Hono’s cache', async () => {
    const app: App = new Hono();
    let executions = 0;
    app.post(
      '/validated',
      validator('json', (value) => value as { amount: number }),
      idempotency(baseOptions()),
      async (c) => c.json({ n: ++executions, amount: c.req.valid('json').amount, text: await c.req.text() }),
    );
    await withServer(app, async (url) => {
      const key = randomUUID();
      const first = await send(url, '/validated', { key, body: '{"amount":5}' });
      assert.deepEqual(JSON.parse(first.text), { n: 1, amount: 5, text: '{"amount":5}' });
      const replay = await send(url, '/validated', { key, body: '{"amount":5}' });
      assert.equal(replay.headers.get('idempotent-replayed'), 'true');
      const reused = await send(url, '/validated', { key, body: '{"amount":6}' });
      assert.equal(reused.status, 422, 'another body under the same key is key-reused');
    });
    assert.equal(executions, 1);
  });

  it('a body over maxBodyBytes gets 413 with no store call, with Content-Length or chunked', async () => {
    const spy = countingStore(memoryStore({ onWarning() {} }));
    const app: App = new Hono();
    let executions = 0;
    app.use('*', idempotency({ store: spy.store, sweepIntervalMs: 0, maxBodyBytes: 64 }));
    app.post('/upload', (c) => c.json({ n: ++executions }));
    await withServer(app, async (url) => {
      const big = JSON.stringify({ pad: 'x'.repeat(200) });
      const sized = await send(url, '/upload', { key: randomUUID(), body: big });
      assert.equal(sized.status, 413);
      assert.match(sized.text, /payload-too-large/);
      const chunked = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < 4; i++) controller.enqueue(new TextEncoder().encode('x'.repeat(50)));
          controller.close();
        },
      });
      assert.equal((await send(url, '/upload', { key: randomUUID(), body: chunked })).status, 413);
      assert.equal(spy.calls(), 0, 'no store call');
      assert.equal((await send(url, '/upload', { key: randomUUID(), body: '{"ok":1}' })).status, 200);
    });
    assert.equal(executions, 1);
  });
});

describe('idemkit/hono: what is captured', () => {
  it('c.json with c.header and setCookie (two lines), c.body bytes, c.redirect, a raw Response, stream()', async () => {
    const app: App = new Hono();
    const executions = new Map<string, number>();
    const count = (path: string) => executions.set(path, (executions.get(path) ?? 0) + 1);
    app.use('*', idempotency(baseOptions()));
    app.post('/json', (c) => {
      count('/json');
      c.header('etag', '"v1"');
      c.header('x-internal', 'node-7');
      setCookie(c, 'a', '1');
      setCookie(c, 'b', '2');
      return c.json({ ok: true }, 201);
    });
    app.post('/bytes', (c) => {
      count('/bytes');
      c.header('content-type', 'application/octet-stream');
      return c.body(Uint8Array.from({ length: 256 }, (_, i) => i));
    });
    app.post('/redirect', (c) => {
      count('/redirect');
      return c.redirect('/payments/9', 303);
    });
    app.post('/raw', () => {
      count('/raw');
      return new Response('raw body', {
        status: 202,
        headers: { 'content-type': 'text/plain', link: '</x>; rel=next' },
      });
    });
    app.post('/stream', (c) => {
      count('/stream');
      c.header('content-type', 'text/plain');
      return stream(c, async (s) => {
        for (const part of ['one ', 'two ', 'three']) await s.write(part);
      });
    });
    await withServer(app, async (url) => {
      const key = () => randomUUID();
      const k1 = key();
      const json = await send(url, '/json', { key: k1 });
      assert.equal(json.status, 201);
      assert.deepEqual(
        json.headers.getSetCookie(),
        ['a=1; Path=/', 'b=2; Path=/'],
        'both cookie lines reach the first caller',
      );
      assert.equal(json.headers.get('x-internal'), 'node-7');
      const jsonReplay = await send(url, '/json', { key: k1 });
      assert.deepEqual(
        [jsonReplay.status, jsonReplay.text, jsonReplay.headers.get('etag')],
        [201, '{"ok":true}', '"v1"'],
      );
      assert.deepEqual(jsonReplay.headers.getSetCookie(), []);
      assert.equal(jsonReplay.headers.get('x-internal'), null);

      const k2 = key();
      const bytes = await fetch(`${url}/bytes`, {
        method: 'POST',
        headers: { authorization: AUTH, 'idempotency-key': k2 },
      });
      const firstBytes = new Uint8Array(await bytes.arrayBuffer());
      const replayBytes = await fetch(`${url}/bytes`, {
        method: 'POST',
        headers: { authorization: AUTH, 'idempotency-key': k2 },
      });
      assert.equal(replayBytes.headers.get('idempotent-replayed'), 'true');
      assert.deepEqual(new Uint8Array(await replayBytes.arrayBuffer()), firstBytes);
      assert.equal(firstBytes.length, 256);

      const k3 = key();
      const redirectInit = { key: k3 };
      const redirect = await fetch(`${url}/redirect`, {
        method: 'POST',
        redirect: 'manual',
        headers: { authorization: AUTH, 'idempotency-key': redirectInit.key },
      });
      const redirectReplay = await fetch(`${url}/redirect`, {
        method: 'POST',
        redirect: 'manual',
        headers: { authorization: AUTH, 'idempotency-key': redirectInit.key },
      });
      assert.deepEqual([redirect.status, redirectReplay.status], [303, 303]);
      assert.equal(redirectReplay.headers.get('location'), '/payments/9');
      assert.equal(redirectReplay.headers.get('idempotent-replayed'), 'true');

      const k4 = key();
      await send(url, '/raw', { key: k4 });
      const rawReplay = await send(url, '/raw', { key: k4 });
      assert.deepEqual(
        [rawReplay.status, rawReplay.text, rawReplay.headers.get('link')],
        [202, 'raw body', '</x>; rel=next'],
      );

      const k5 = key();
      assert.equal((await send(url, '/stream', { key: k5 })).text, 'one two three');
      const streamReplay = await send(url, '/stream', { key: k5 });
      assert.deepEqual(
        [streamReplay.text, streamReplay.headers.get('idempotent-replayed')],
        ['one two three', 'true'],
      );
    });
    for (const [path, n] of executions) assert.equal(n, 1, path);
    assert.equal(executions.size, 5);
  });

  it('middleware after it is captured; headers set by middleware before it reach replays and rejections too', async () => {
    const app: App = new Hono();
    let executions = 0;
    app.use('*', cors({ origin: 'https://shop.example' }));
    app.use('*', async (c, next) => {
      c.header('x-request-id', 'req-1');
      c.header('cache-control', 'private');
      await next();
    });
    app.use('*', idempotency(baseOptions()));
    app.use('*', async (c, next) => {
      await next();
      c.header('content-language', 'de'); // after the handler: part of the captured answer
    });
    app.post('/pay', (c) => c.json({ n: ++executions }, 201));
    await withServer(app, async (url) => {
      const key = randomUUID();
      const headers = { origin: 'https://shop.example' };
      const first = await send(url, '/pay', { key, headers });
      const replay = await send(url, '/pay', { key, headers });
      const missing = await send(url, '/pay', { headers });
      for (const reply of [first, replay, missing]) {
        assert.equal(reply.headers.get('access-control-allow-origin'), 'https://shop.example');
        assert.equal(reply.headers.get('x-request-id'), 'req-1');
      }
      assert.equal(first.headers.get('content-language'), 'de');
      assert.equal(replay.headers.get('content-language'), 'de', 'stored from the captured answer');
      assert.equal(replay.headers.get('idempotent-replayed'), 'true');
      assert.equal(
        replay.headers.get('cache-control'),
        'no-store',
        "the engine's fields win over earlier ones",
      );
      assert.equal(missing.status, 400);
      assert.equal(replay.text, first.text);
    });
    assert.equal(executions, 1);
  });
});

describe('idemkit/hono: answers that fail midway', () => {
  it('a response stream that errors midway ends the execution: the retry gets an answer within 5 s', async () => {
    const app: App = new Hono();
    let executions = 0;
    app.use('*', idempotency(baseOptions()));
    app.post('/export', (c) => {
      executions++;
      if (executions === 1) {
        const broken = new ReadableStream<Uint8Array>({
          pull(controller) {
            controller.enqueue(new TextEncoder().encode('partial'));
            controller.error(new Error('disk gone at /srv/export.ts'));
          },
        });
        return c.body(broken, 201);
      }
      return c.text('complete', 201);
    });
    await withServer(app, async (url) => {
      const key = randomUUID();
      const first = await send(url, '/export', { key });
      assert.equal(first.status, 500);
      assert.doesNotMatch(first.text, /disk gone|export\.ts/);
      const retry = await send(url, '/export', { key }); // send() gives up after 5 s
      assert.deepEqual([retry.status, retry.text], [201, 'complete']);
    });
    assert.equal(executions, 2);
  });

  it('a client that disconnects before the handler finished leaves no locked key: a retry gets the result', async () => {
    const app: App = new Hono();
    let executions = 0;
    let finishedAfterClientLeft: boolean | undefined;
    app.use('*', idempotency(baseOptions()));
    app.post('/slow', async (c) => {
      executions++;
      // Finishes only once the client has gone (a fixed 300 ms could finish before it left).
      if (executions === 1) finishedAfterClientLeft = await clientGone((c.env as NodeEnv).outgoing);
      return c.json({ done: true }, 201);
    });
    await withServer(app, async (url) => {
      const key = randomUUID();
      const client = new AbortController();
      const gone = fetch(`${url}/slow`, {
        method: 'POST',
        headers: { authorization: AUTH, 'idempotency-key': key, 'content-type': 'application/json' },
        body: '{}',
        signal: client.signal,
      });
      // The client gives up once the handler runs (a fixed 50 ms could give up before it got there).
      const until = Date.now() + 5_000;
      while (executions === 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 5));
      assert.equal(executions, 1, 'the first request reached its handler within 5 s');
      client.abort();
      await assert.rejects(gone);
      const deadline = Date.now() + 5_000;
      let reply = await send(url, '/slow', { key });
      for (let i = 0; i < 100 && reply.status === 409 && Date.now() < deadline; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        reply = await send(url, '/slow', { key });
      }
      assert.equal(finishedAfterClientLeft, true, 'the client went away before the handler finished');
      assert.equal(reply.status, 201);
      assert.equal(reply.headers.get('idempotent-replayed'), 'true', 'the handler finished and was stored');
    });
    assert.equal(executions, 1);
  });
});
