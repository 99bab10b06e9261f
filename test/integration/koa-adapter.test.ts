import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import Koa, { type Next, type ParameterizedContext } from 'koa';
import { type IdempotencyState, idempotency, type KoaIdempotencyOptions } from '../../src/adapters/koa.js';
import { createIdempotency, memoryStore } from '../../src/index.js';
import { countingStore } from '../../src/testing/index.js';
import { clientGone } from '../support/client-gone.js';
import { serveKoa } from '../support/koa-reference.js';

type App = Koa<IdempotencyState>;
type Ctx = ParameterizedContext<IdempotencyState>;

const AUTH = 'Bearer koa-user';

function baseOptions(): KoaIdempotencyOptions {
  return { store: memoryStore({ onWarning() {} }), sweepIntervalMs: 0, onWarning() {} };
}

/** A Koa app that keeps Koa's error reports in `errors` instead of printing them. */
function koaApp(): { app: App; errors: Error[] } {
  const app: App = new Koa();
  const errors: Error[] = [];
  app.on('error', (error: Error) => errors.push(error));
  return { app, errors };
}

interface Sent {
  status: number;
  headers: Headers;
  bytes: Buffer;
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
  const bytes = Buffer.from(await response.arrayBuffer());
  return { status: response.status, headers: response.headers, bytes, text: bytes.toString() };
}

/** Serves `app` for one test body and always closes it. */
async function withServer(app: App, body: (url: string) => Promise<void>): Promise<void> {
  const server = await serveKoa(app);
  try {
    await body(server.url);
  } finally {
    await server.close();
  }
}

/** Routes by method and path, as an app without @koa/router would. */
function route(method: string, path: string, handler: (ctx: Ctx) => unknown) {
  return async function routeMiddleware(ctx: Ctx, next: Next): Promise<void> {
    if (ctx.method === method && ctx.path === path) await handler(ctx);
    else await next();
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves once `check` holds, polling every 5 ms; bounded to 5 s (then resolves anyway). */
async function whenTrue(check: () => boolean): Promise<void> {
  const until = Date.now() + 5_000;
  while (!check() && Date.now() < until) await sleep(5);
}

describe('idemkit/koa: the context on ctx.state', () => {
  it('ctx.state.idempotency carries downstreamKey (stable across retries), fencingToken, signal, effectsStarted', async () => {
    const { app } = koaApp();
    const seen: { key: string; fencing: number; signal: boolean; marks: boolean }[] = [];
    const outside: unknown[] = [];
    app.use(idempotency({ ...baseOptions(), required: false }));
    app.use(
      route('POST', '/charge', (ctx) => {
        const idem = ctx.state.idempotency;
        if (!idem) {
          outside.push(idem);
          ctx.body = { unkeyed: true };
          return;
        }
        seen.push({
          key: idem.downstreamKey(),
          fencing: idem.fencingToken,
          signal: idem.signal instanceof AbortSignal,
          marks: typeof idem.effectsStarted === 'function',
        });
        // The first attempt fails momentarily (503 releases the key), the retry succeeds.
        ctx.status = seen.length === 1 ? 503 : 201;
        ctx.body = { attempt: seen.length };
      }),
    );
    app.use(
      route('GET', '/charge', (ctx) => {
        ctx.body = { idem: ctx.state.idempotency ?? null };
      }),
    );
    await withServer(app, async (url) => {
      const key = randomUUID();
      assert.equal((await send(url, '/charge', { key })).status, 503);
      assert.equal((await send(url, '/charge', { key })).status, 201);
      const third = await send(url, '/charge', { key });
      assert.equal(third.headers.get('idempotent-replayed'), 'true');
      assert.equal((await send(url, '/charge')).status, 200, 'unkeyed, not required: passes through');
      const get = await send(url, '/charge', { method: 'GET' });
      assert.deepEqual(JSON.parse(get.text), { idem: null });
    });
    assert.equal(seen.length, 2, 'the 503 released the key, the 201 was stored and replayed');
    assert.equal(seen[0]?.key, seen[1]?.key, 'the downstream key is the same for the retry');
    for (const s of seen) assert.ok(typeof s.fencing === 'number' && s.signal && s.marks);
    assert.deepEqual(outside, [undefined]);
  });

  it('principal() receives Koa’s ctx (auth middleware in front); one engine shared by two apps', async () => {
    const engine = createIdempotency({
      store: memoryStore({ onWarning() {} }),
      sweepIntervalMs: 0,
      onWarning() {},
      principal: (native) => (native as Ctx & { state: { user?: string | undefined } }).state.user,
    });
    let executions = 0;
    const apps = [koaApp().app, koaApp().app];
    for (const app of apps) {
      app.use(async (ctx, next) => {
        (ctx.state as { user?: string | undefined }).user = ctx.get('x-user') || undefined;
        await next();
      });
      app.use(idempotency(engine));
      app.use(
        route('POST', '/pay', (ctx) => {
          executions++;
          ctx.status = 201;
          ctx.body = { execution: executions };
        }),
      );
    }
    const [a, b] = [await serveKoa(apps[0] as App), await serveKoa(apps[1] as App)];
    try {
      const key = randomUUID();
      const alice = { key, headers: { 'x-user': 'alice' } };
      const first = await send(a.url, '/pay', alice);
      const otherApp = await send(b.url, '/pay', alice);
      assert.equal(otherApp.headers.get('idempotent-replayed'), 'true', 'the shared engine replays');
      assert.equal(otherApp.text, first.text);
      const bob = await send(a.url, '/pay', { key, headers: { 'x-user': 'bob' } });
      assert.equal(bob.headers.get('idempotent-replayed'), 'false', 'another principal, another scope');
      const nobody = await send(a.url, '/pay', { key });
      assert.equal(nobody.status, 401, 'principal() gave undefined: principal-required');
    } finally {
      await a.close();
      await b.close();
      await engine.close();
    }
    assert.equal(executions, 2);
  });
});

describe('idemkit/koa: negative control', () => {
  it('without the middleware a retried POST executes twice; with it, once and the retry is a replay', async () => {
    for (const covered of [false, true]) {
      const { app } = koaApp();
      let executions = 0;
      if (covered) app.use(idempotency(baseOptions()));
      app.use(
        route('POST', '/pay', (ctx) => {
          executions++;
          ctx.status = 201;
          ctx.body = { charged: executions };
        }),
      );
      await withServer(app, async (url) => {
        const key = randomUUID();
        const first = await send(url, '/pay', { key });
        const retry = await send(url, '/pay', { key });
        if (covered) assert.equal(retry.text, first.text);
      });
      assert.equal(executions, covered ? 1 : 2, covered ? 'with idemkit' : 'without idemkit');
    }
  });
});

describe('idemkit/koa: throws', () => {
  it('a thrown Error releases the key with a sanitised 500, even under an error middleware that would leak', async () => {
    const { app, errors } = koaApp();
    let executions = 0;
    // A common Koa error middleware that echoes the message: under a claim it cannot reach the client.
    app.use(async (ctx, next) => {
      try {
        await next();
      } catch (error) {
        ctx.status = 500;
        ctx.body = { leaked: (error as Error).message };
        ctx.app.emit('error', error, ctx);
      }
    });
    app.use(idempotency(baseOptions()));
    app.use(
      route('POST', '/pay', (ctx) => {
        executions++;
        ctx.status = 201; // set before the failure: neither it nor its reason phrase survives
        ctx.set('x-partial', 'yes');
        if (executions === 1) throw new Error('db password hunter2 at /srv/pay.ts');
        ctx.body = { charged: true };
      }),
    );
    await withServer(app, async (url) => {
      const key = randomUUID();
      const first = await send(url, '/pay', { key });
      assert.equal(first.status, 500);
      assert.equal(first.headers.get('content-type'), 'application/problem+json');
      assert.equal(first.headers.get('x-partial'), null);
      assert.doesNotMatch(first.text, /hunter2|pay\.ts|leaked/);
      const retry = await send(url, '/pay', { key });
      assert.equal(retry.status, 201, 'the key was released: the retry executes');
    });
    assert.equal(executions, 2);
    assert.match(errors[0]?.message ?? '', /hunter2/, 'the error still reaches the app’s error handling');
  });

  it('the status line of the sanitised 500 is "500 Internal Server Error", not the handler’s reason phrase', async () => {
    const { app } = koaApp();
    app.use(idempotency(baseOptions()));
    app.use((ctx) => {
      ctx.status = 201; // Koa sets res.statusMessage = 'Created' with it
      throw new Error('boom');
    });
    await withServer(app, async (url) => {
      const line = await new Promise<string>((resolve, reject) => {
        const req = httpRequest(
          `${url}/pay`,
          { method: 'POST', headers: { authorization: AUTH, 'idempotency-key': randomUUID() } },
          (res) => {
            res.resume();
            resolve(`${res.statusCode} ${res.statusMessage}`);
          },
        );
        req.once('error', reject);
        req.end('{}');
      });
      assert.equal(line, '500 Internal Server Error');
    });
  });

  it('ctx.throw(422, …) is an answer: Koa renders it, it is stored and replayed; ctx.throw(503) releases', async () => {
    const { app } = koaApp();
    let executions = 0;
    app.use(idempotency(baseOptions()));
    app.use(
      route('POST', '/pay', (ctx) => {
        executions++;
        ctx.throw(422, 'amount must be positive', { headers: { 'content-language': 'en' } });
      }),
    );
    app.use(
      route('POST', '/busy', (ctx) => {
        executions++;
        ctx.throw(503);
      }),
    );
    await withServer(app, async (url) => {
      const key = randomUUID();
      const first = await send(url, '/pay', { key });
      assert.deepEqual([first.status, first.text], [422, 'amount must be positive']);
      assert.equal(first.headers.get('idempotent-replayed'), 'false');
      const replay = await send(url, '/pay', { key });
      assert.deepEqual([replay.status, replay.text], [422, 'amount must be positive']);
      assert.equal(replay.headers.get('idempotent-replayed'), 'true');
      assert.equal(replay.headers.get('content-language'), 'en', 'err.headers were part of the answer');
      const busyKey = randomUUID();
      assert.equal((await send(url, '/busy', { key: busyKey })).status, 503);
      const busyAgain = await send(url, '/busy', { key: busyKey });
      assert.equal(busyAgain.headers.get('idempotent-replayed'), 'false', '503 released the key');
    });
    assert.equal(executions, 3);
  });
});

describe('idemkit/koa: the request body', () => {
  it('handlers after the middleware read ctx.req as usual: data events, for await, keyed or not, empty', async () => {
    const { app } = koaApp();
    const read: string[] = [];
    app.use(idempotency({ ...baseOptions(), required: false }));
    app.use(
      route('POST', '/events', async (ctx) => {
        const chunks: Buffer[] = [];
        await new Promise<void>((resolve, reject) => {
          ctx.req.on('data', (chunk: Buffer) => chunks.push(chunk));
          ctx.req.once('end', resolve);
          ctx.req.once('error', reject);
        });
        read.push(Buffer.concat(chunks).toString());
        ctx.body = 'ok';
      }),
    );
    app.use(
      route('POST', '/iterate', async (ctx) => {
        const chunks: Buffer[] = [];
        for await (const chunk of ctx.req) chunks.push(chunk as Buffer);
        read.push(Buffer.concat(chunks).toString());
        ctx.body = 'ok';
      }),
    );
    await withServer(app, async (url) => {
      const big = JSON.stringify({ note: 'x'.repeat(200_000) });
      await send(url, '/events', { key: randomUUID(), body: '{"amount":1}' });
      await send(url, '/iterate', { key: randomUUID(), body: big });
      await send(url, '/events', { body: '{"unkeyed":true}' });
      const chunked = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('{"chunked":'));
          controller.enqueue(new TextEncoder().encode('true}'));
          controller.close();
        },
      });
      await send(url, '/iterate', { key: randomUUID(), body: chunked });
      await send(url, '/iterate', { key: randomUUID(), body: '' });
    });
    assert.deepEqual(read, [
      '{"amount":1}',
      JSON.stringify({ note: 'x'.repeat(200_000) }),
      '{"unkeyed":true}',
      '{"chunked":true}',
      '',
    ]);
  });

  it('a parser in front that keeps ctx.request.rawBody (koa-bodyparser) or koa-body’s unparsed text: fingerprinted', async () => {
    const { app } = koaApp();
    let executions = 0;
    // What koa-bodyparser and koa-body (includeUnparsed) leave behind, without the packages.
    app.use(async (ctx, next) => {
      const chunks: Buffer[] = [];
      for await (const chunk of ctx.req) chunks.push(chunk as Buffer);
      const text = Buffer.concat(chunks).toString();
      const request = ctx.request as typeof ctx.request & { rawBody?: string; body?: unknown };
      if (ctx.path === '/bodyparser') {
        request.body = JSON.parse(text);
        request.rawBody = text;
      } else request.body = { ...JSON.parse(text), [Symbol.for('unparsedBody')]: text };
      await next();
    });
    app.use(idempotency(baseOptions()));
    app.use((ctx) => {
      executions++;
      ctx.status = 201;
      ctx.body = { got: (ctx.request as typeof ctx.request & { body?: unknown }).body };
    });
    await withServer(app, async (url) => {
      for (const path of ['/bodyparser', '/koa-body']) {
        const key = randomUUID();
        const first = await send(url, path, { key, body: '{"amount":100}' });
        assert.equal(first.status, 201, path);
        const replay = await send(url, path, { key, body: '{"amount":100}' });
        assert.equal(replay.headers.get('idempotent-replayed'), 'true', path);
        const other = await send(url, path, { key, body: '{"amount":999}' });
        assert.equal(other.status, 422, `${path}: another body under the same key is key-reused`);
      }
    });
    assert.equal(executions, 2);
  });

  it('a parser in front that consumed the stream without keeping the raw text: a loud 500, not a guess', async () => {
    const { app, errors } = koaApp();
    let executions = 0;
    app.use(async (ctx, next) => {
      for await (const _ of ctx.req);
      (ctx.request as typeof ctx.request & { body?: unknown }).body = { parsed: true };
      await next();
    });
    app.use(idempotency(baseOptions()));
    app.use((ctx) => {
      executions++;
      ctx.body = 'ran';
    });
    await withServer(app, async (url) => {
      const reply = await send(url, '/pay', { key: randomUUID() });
      assert.equal(reply.status, 500);
      assert.doesNotMatch(reply.text, /idemkit/);
    });
    assert.equal(executions, 0);
    assert.match(errors[0]?.message ?? '', /put idempotency\(\) before the parser/);
  });

  it('a body over maxBodyBytes gets 413 with no store call, with Content-Length or chunked; the connection closes', async () => {
    const counted = countingStore(memoryStore({ onWarning() {} }));
    const { app } = koaApp();
    let executions = 0;
    app.use(idempotency({ ...baseOptions(), store: counted.store, maxBodyBytes: 64 }));
    app.use((ctx) => {
      executions++;
      ctx.body = 'ran';
    });
    await withServer(app, async (url) => {
      const sized = await send(url, '/pay', {
        key: randomUUID(),
        body: JSON.stringify({ pad: 'x'.repeat(100) }),
      });
      assert.equal(sized.status, 413);
      assert.equal(sized.headers.get('content-type'), 'application/problem+json');
      assert.equal(sized.headers.get('connection'), 'close');
      const chunked = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < 4; i++) controller.enqueue(new Uint8Array(40).fill(120));
          controller.close();
        },
      });
      assert.equal((await send(url, '/pay', { key: randomUUID(), body: chunked })).status, 413);
    });
    assert.equal(counted.calls(), 0);
    assert.equal(executions, 0);
  });
});

/** Sends the same keyed POST twice and returns both answers with the executions counted. */
async function twice(handler: (ctx: Ctx) => unknown, options: Partial<KoaIdempotencyOptions> = {}) {
  const { app, errors } = koaApp();
  let executions = 0;
  app.use(idempotency({ ...baseOptions(), ...options }));
  app.use(async (ctx) => {
    executions++;
    await handler(ctx);
  });
  let first: Sent | undefined;
  let second: Sent | undefined;
  await withServer(app, async (url) => {
    const key = randomUUID();
    first = await send(url, '/pay', { key });
    second = await send(url, '/pay', { key });
  });
  return { first: first as Sent, second: second as Sent, executions, errors };
}

describe('idemkit/koa: what the chain answers is captured at ctx.res, stored, replayed', () => {
  const bodies: [string, (ctx: Ctx) => unknown, { type: string | null; text: string; status: number }][] = [
    [
      'a string',
      (ctx) => {
        ctx.body = 'charged';
      },
      { type: 'text/plain; charset=utf-8', text: 'charged', status: 200 },
    ],
    [
      'html',
      (ctx) => {
        ctx.body = '<p>ok</p>';
      },
      { type: 'text/html; charset=utf-8', text: '<p>ok</p>', status: 200 },
    ],
    [
      'a Buffer',
      (ctx) => {
        ctx.body = Buffer.from([0, 1, 254, 255]);
      },
      { type: 'application/octet-stream', text: Buffer.from([0, 1, 254, 255]).toString(), status: 200 },
    ],
    [
      'an object (JSON)',
      (ctx) => {
        ctx.status = 201;
        ctx.body = { id: 'pay_1', amount: 12 };
      },
      { type: 'application/json; charset=utf-8', text: '{"id":"pay_1","amount":12}', status: 201 },
    ],
    [
      'a Node stream',
      (ctx) => {
        ctx.type = 'text/csv';
        ctx.body = Readable.from(['a,b\n', '1,2\n']);
      },
      { type: 'text/csv; charset=utf-8', text: 'a,b\n1,2\n', status: 200 },
    ],
    [
      'a web ReadableStream',
      (ctx) => {
        ctx.type = 'text/plain';
        ctx.body = new Blob(['from ', 'a blob']).stream();
      },
      { type: 'text/plain; charset=utf-8', text: 'from a blob', status: 200 },
    ],
    [
      'a Blob',
      (ctx) => {
        ctx.body = new Blob(['blob body'], { type: 'text/plain' });
      },
      { type: 'text/plain; charset=utf-8', text: 'blob body', status: 200 },
    ],
    [
      'a web Response',
      (ctx) => {
        ctx.body = new Response('{"from":"fetch"}', {
          status: 201,
          headers: { 'content-type': 'application/json', etag: '"r1"' },
        });
      },
      { type: 'application/json', text: '{"from":"fetch"}', status: 201 },
    ],
    [
      'status only (Koa writes the reason)',
      (ctx) => {
        ctx.status = 202;
      },
      { type: 'text/plain; charset=utf-8', text: 'Accepted', status: 202 },
    ],
    [
      'null (204)',
      (ctx) => {
        ctx.body = null;
      },
      { type: null, text: '', status: 204 },
    ],
    [
      'ctx.respond = false with writeHead/write/end',
      (ctx) => {
        ctx.respond = false;
        ctx.res.writeHead(201, { 'content-type': 'application/x-raw', location: '/raw/1' });
        ctx.res.write('raw ');
        setTimeout(() => ctx.res.end('answer'), 20);
      },
      { type: 'application/x-raw', text: 'raw answer', status: 201 },
    ],
  ];
  for (const [name, handler, expected] of bodies) {
    it(`ctx.body as ${name}`, async () => {
      const r = await twice(handler);
      assert.equal(r.executions, 1, name);
      assert.equal(r.first.status, expected.status, name);
      assert.equal(r.first.headers.get('content-type'), expected.type, name);
      assert.equal(r.first.text, expected.text, name);
      assert.equal(r.first.headers.get('idempotent-replayed'), 'false', name);
      assert.equal(r.second.status, expected.status, name);
      assert.equal(r.second.headers.get('idempotent-replayed'), 'true', name);
      assert.equal(r.second.headers.get('content-type'), expected.type, name);
      assert.deepEqual(r.second.bytes, r.first.bytes, name);
      assert.deepEqual(r.errors, [], name);
    });
  }

  it('ctx.set, ctx.append and two cookies: every line on the original, the allowlisted ones on the replay', async () => {
    const r = await twice((ctx) => {
      ctx.status = 201;
      ctx.set('location', '/payments/1');
      ctx.set('x-internal', 'node-7');
      ctx.append('link', '</a>; rel="a"');
      ctx.append('link', '</b>; rel="b"');
      ctx.cookies.set('session', 's1');
      ctx.cookies.set('csrf', 'c1');
      ctx.body = { id: 1 };
    });
    assert.equal(r.executions, 1);
    assert.deepEqual(
      r.first.headers.getSetCookie().map((c) => c.split(';')[0]),
      ['session=s1', 'csrf=c1'],
    );
    assert.equal(r.first.headers.get('x-internal'), 'node-7');
    assert.equal(r.second.headers.get('location'), '/payments/1');
    assert.equal(r.second.headers.get('link'), '</a>; rel="a", </b>; rel="b"');
    assert.deepEqual(r.second.headers.getSetCookie(), [], 'cookies are never replayed');
    assert.equal(r.second.headers.get('x-internal'), null);
  });

  it('middleware in front: headers it sets before and after next() reach the original, replays and rejections', async () => {
    const { app } = koaApp();
    let executions = 0;
    app.use(async (ctx, next) => {
      ctx.set('access-control-allow-origin', '*');
      await next();
      ctx.set('x-response-time', '1ms');
    });
    app.use(idempotency(baseOptions()));
    app.use((ctx) => {
      executions++;
      ctx.status = 201;
      ctx.body = { ok: true };
    });
    await withServer(app, async (url) => {
      const key = randomUUID();
      const first = await send(url, '/pay', { key });
      const replay = await send(url, '/pay', { key });
      const missing = await send(url, '/pay');
      for (const [name, reply] of [
        ['original', first],
        ['replay', replay],
        ['rejection', missing],
      ] as const) {
        assert.equal(reply.headers.get('access-control-allow-origin'), '*', name);
        assert.equal(reply.headers.get('x-response-time'), '1ms', name);
      }
      assert.equal(replay.text, first.text);
      assert.equal(replay.headers.get('cache-control'), 'no-store', "the engine's fields are on the replay");
      assert.equal(missing.status, 400);
    });
    assert.equal(executions, 1);
  });

  it('a stream body past maxStoredBytes reaches the first caller whole; replays answer result-unavailable', async () => {
    const chunk = 'y'.repeat(32 * 1024);
    const r = await twice(
      (ctx) => {
        ctx.status = 201;
        ctx.body = Readable.from([chunk, chunk, chunk, chunk]);
      },
      { maxStoredBytes: 50_000 },
    );
    assert.equal(r.executions, 1);
    assert.equal(r.first.status, 201);
    assert.equal(r.first.bytes.byteLength, 4 * chunk.length);
    assert.equal(r.second.status, 409);
    assert.match(r.second.text, /result-unavailable/);
  });
});

describe('idemkit/koa: answers that fail midway', () => {
  function failingStream(): Readable {
    let sent = false;
    return new Readable({
      read() {
        if (sent) return;
        sent = true;
        this.push('partial');
        setImmediate(() => this.destroy(new Error('disk gone at /srv/export.ts')));
      },
    });
  }

  it('a ctx.body stream that errors midway ends the execution: the retry gets an answer within 5 s', async () => {
    const { app, errors } = koaApp();
    let executions = 0;
    app.use(idempotency(baseOptions()));
    app.use((ctx) => {
      executions++;
      ctx.status = 201;
      ctx.body = executions === 1 ? failingStream() : 'complete';
    });
    await withServer(app, async (url) => {
      const key = randomUUID();
      const first = await send(url, '/export', { key }).catch((error: Error) => error);
      if (!(first instanceof Error)) assert.doesNotMatch(first.text, /disk gone|export\.ts/);
      const retry = await send(url, '/export', { key }); // send() gives up after 5 s
      assert.deepEqual([retry.status, retry.text], [201, 'complete']);
    });
    assert.equal(executions, 2);
    assert.ok(
      errors.some((e) => /disk gone/.test(e.message)),
      'Koa reported the stream error',
    );
  });

  it('ctx.respond = false and a pipeline that fails midway: the retry gets an answer within 5 s', async () => {
    const { app } = koaApp();
    let executions = 0;
    app.use(idempotency(baseOptions()));
    app.use(async (ctx) => {
      executions++;
      ctx.respond = false;
      if (executions > 1) return void ctx.res.writeHead(201).end('complete');
      ctx.res.statusCode = 201;
      await pipeline(failingStream(), ctx.res).catch(() => {});
    });
    await withServer(app, async (url) => {
      const key = randomUUID();
      await send(url, '/export', { key }).catch(() => undefined);
      const retry = await send(url, '/export', { key });
      assert.deepEqual([retry.status, retry.text], [201, 'complete']);
    });
    assert.equal(executions, 2);
  });

  it('ctx.respond = false and a .pipe() cut short by a client that went away: the retry gets an answer', async () => {
    const { app } = koaApp();
    let executions = 0;
    let cutShort: boolean | undefined;
    app.use(idempotency(baseOptions()));
    app.use((ctx) => {
      executions++;
      ctx.respond = false;
      ctx.res.statusCode = 201;
      if (executions > 1) return void ctx.res.end('complete');
      const res = ctx.res;
      Readable.from(
        (async function* slowly() {
          yield 'chunk';
          // The rest only once the client has gone (a fixed pace could finish before it left).
          cutShort = await clientGone(res);
          for (let i = 0; i < 5; i++) {
            await sleep(50);
            yield 'chunk';
          }
        })(),
      ).pipe(res);
    });
    await withServer(app, async (url) => {
      const reply = await abandonThenRetry(url, '/export', () => executions === 1);
      assert.deepEqual([reply.status, reply.text], [201, 'complete']);
    });
    assert.equal(cutShort, true, 'the client went away while the pipe still ran');
    assert.equal(executions, 2);
  });

  /**
   * Sends a keyed POST whose client gives up once its handler runs (`started`; a fixed delay could
   * give up before the request reached the handler, or after the handler finished), then retries
   * until the key is free.
   */
  async function abandonThenRetry(url: string, path: string, started: () => boolean): Promise<Sent> {
    const key = randomUUID();
    const client = new AbortController();
    const gone = fetch(`${url}${path}`, {
      method: 'POST',
      headers: { authorization: AUTH, 'idempotency-key': key, 'content-type': 'application/json' },
      body: '{}',
      signal: client.signal,
    }).then((response) => response.arrayBuffer()); // an abort after the headers fails the body
    await whenTrue(started);
    assert.ok(started(), 'the first request reached its handler within 5 s');
    client.abort();
    await assert.rejects(gone);
    const deadline = Date.now() + 5_000;
    let reply = await send(url, path, { key });
    for (let i = 0; i < 100 && reply.status === 409 && Date.now() < deadline; i++) {
      await sleep(50);
      reply = await send(url, path, { key });
    }
    return reply;
  }

  it('a client that disconnects before the handler finished: the result is still stored, the retry replays it', async () => {
    const { app } = koaApp();
    let executions = 0;
    let finishedAfterClientLeft: boolean | undefined;
    app.use(idempotency(baseOptions()));
    app.use(async (ctx) => {
      executions++;
      // Finishes only once the client has gone (a fixed 300 ms could finish before it left).
      if (executions === 1) finishedAfterClientLeft = await clientGone(ctx.res);
      ctx.status = 201;
      ctx.body = { done: executions };
    });
    await withServer(app, async (url) => {
      const reply = await abandonThenRetry(url, '/slow', () => executions === 1);
      assert.equal(finishedAfterClientLeft, true, 'the client went away before the handler finished');
      assert.equal(reply.status, 201);
      assert.equal(reply.headers.get('idempotent-replayed'), 'true', 'the handler finished and was stored');
      assert.deepEqual(JSON.parse(reply.text), { done: 1 });
    });
    assert.equal(executions, 1);
  });

  it('a client that disconnects before a stream body was read: the execution ends, the retry runs it again', async () => {
    const { app } = koaApp();
    let executions = 0;
    app.use(idempotency(baseOptions()));
    let clientLeftFirst: boolean | undefined;
    app.use(async (ctx) => {
      executions++;
      if (executions === 1) clientLeftFirst = await clientGone(ctx.res); // was a fixed 300 ms
      ctx.status = 201;
      // Koa destroys a stream body once the client has gone: nothing whole is left to store, so
      // the key must be freed rather than left locked or stored empty.
      ctx.body = Readable.from(['streamed']);
    });
    await withServer(app, async (url) => {
      const reply = await abandonThenRetry(url, '/slow', () => executions === 1);
      assert.equal(clientLeftFirst, true, 'the client went away before the stream body was set');
      assert.deepEqual([reply.status, reply.text], [201, 'streamed']);
      assert.equal(reply.headers.get('idempotent-replayed'), 'false');
    });
    assert.equal(executions, 2);
  });
});
