import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { IncomingMessage, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import type { Express, NextFunction, Request, Response } from 'express';
import {
  type ExpressIdempotencyOptions,
  idempotency,
  idempotencyErrors,
  keepRawBody,
  rawBodyOf,
} from '../../src/adapters/express.js';
import { createIdempotency, memoryStore } from '../../src/index.js';
import { countingStore } from '../../src/testing/index.js';
import { type ExpressMajor, expressOf, listen, quiet } from '../support/express-reference.js';

/*
 * idemkit/express over real sockets on Express 4 and 5: the context on req, the negative control,
 * throws, the body with and without parsers, every way a handler writes res, responses that fail
 * midway, and the 413 before any store call.
 */

const AUTH = 'Bearer express-user';
const LEAK = 'db password hunter2 at /srv/app/charge.ts';

function baseOptions(overrides: Partial<ExpressIdempotencyOptions> = {}): ExpressIdempotencyOptions {
  return { store: memoryStore({ onWarning() {} }), sweepIntervalMs: 0, onWarning() {}, ...overrides };
}

interface Sent {
  status: number;
  headers: Headers;
  text: string;
  bytes: Uint8Array;
}

async function send(
  url: string,
  path: string,
  o: {
    key?: string;
    body?: BodyInit;
    method?: string;
    headers?: Record<string, string>;
    redirect?: RequestRedirect;
  } = {},
): Promise<Sent> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    authorization: AUTH,
    ...o.headers,
  };
  if (o.key !== undefined) headers['idempotency-key'] = o.key;
  const method = o.method ?? 'POST';
  const init: RequestInit & { duplex?: 'half' } = {
    method,
    headers,
    redirect: o.redirect ?? 'follow',
    signal: AbortSignal.timeout(5_000),
  };
  if (method !== 'GET' && method !== 'HEAD') init.body = o.body ?? '{}';
  if (o.body instanceof ReadableStream) init.duplex = 'half';
  const response = await fetch(`${url}${path}`, init);
  const bytes = new Uint8Array(await response.arrayBuffer());
  return { status: response.status, headers: response.headers, text: Buffer.from(bytes).toString(), bytes };
}

/** Serves `app` for one test body and always closes it. */
async function withApp(app: Express, body: (url: string) => Promise<void>): Promise<void> {
  const server = await listen(app);
  try {
    await body(server.url);
  } finally {
    await server.close();
  }
}

function chunkedBody(parts: string[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (const part of parts) controller.enqueue(new TextEncoder().encode(part));
      controller.close();
    },
  });
}

const tmp = mkdtempSync(join(tmpdir(), 'idemkit-express-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

for (const major of [4, 5] as ExpressMajor[]) {
  const express = expressOf(major);
  function newApp(): Express {
    const app = express();
    quiet(app);
    return app;
  }

  describe(`idemkit/express on Express ${major}: the context on req`, () => {
    it('req.idempotency carries downstreamKey (stable across retries), fencingToken, signal, effectsStarted', async () => {
      const app = newApp();
      const seen: { key: string; fencing: unknown; signal: boolean; effects: string }[] = [];
      app.use(idempotency(baseOptions()));
      app.post('/charge', (req, res) => {
        const ctx = req.idempotency;
        assert.ok(ctx, 'a keyed POST runs under a claim');
        seen.push({
          key: ctx.downstreamKey(),
          fencing: ctx.fencingToken,
          signal: ctx.signal instanceof AbortSignal,
          effects: typeof ctx.effectsStarted,
        });
        // The first attempt fails momentarily (503 releases the key), the retry succeeds.
        if (seen.length === 1) res.status(503).json({ retry: true });
        else res.status(201).json({ charged: true });
      });
      app.get('/charge', (req, res) => {
        res.json({ ctx: req.idempotency === undefined ? 'none' : 'set' });
      });
      await withApp(app, async (url) => {
        const key = randomUUID();
        assert.equal((await send(url, '/charge', { key })).status, 503);
        assert.equal((await send(url, '/charge', { key })).status, 201);
        const third = await send(url, '/charge', { key });
        assert.equal(third.headers.get('idempotent-replayed'), 'true');
        const get = await send(url, '/charge', { key, method: 'GET' });
        assert.deepEqual([get.text, get.headers.get('idempotent-replayed')], ['{"ctx":"none"}', null]);
      });
      assert.equal(seen.length, 2, 'the 503 released the key, the 201 was stored and replayed');
      assert.equal(seen[0]?.key, seen[1]?.key, 'the downstream key is the same for the retry');
      for (const s of seen)
        assert.deepEqual([typeof s.fencing, s.signal, s.effects], ['number', true, 'function']);
    });

    it('principal() receives Express’s req; the path is the one the client sent, also under mounted routers', async () => {
      const engine = createIdempotency({
        store: memoryStore({ onWarning() {} }),
        sweepIntervalMs: 0,
        principal: (req) => (req as Request & { user?: string }).user,
      });
      const app = newApp();
      app.use((req, _res, next) => {
        (req as Request & { user?: string | undefined }).user = req.get('x-user');
        next();
      });
      let executions = 0;
      for (const prefix of ['/v1', '/v2']) {
        const router = express.Router();
        router.use(idempotency(engine));
        router.post('/pay', (_req, res) => {
          res.status(201).json({ n: ++executions, prefix });
        });
        app.use(prefix, router);
      }
      await withApp(app, async (url) => {
        const key = randomUUID();
        const alice = await send(url, '/v1/pay', { key, headers: { 'x-user': 'alice' } });
        const aliceAgain = await send(url, '/v1/pay', { key, headers: { 'x-user': 'alice' } });
        assert.equal(aliceAgain.headers.get('idempotent-replayed'), 'true');
        assert.equal(aliceAgain.text, alice.text);
        const bob = await send(url, '/v1/pay', { key, headers: { 'x-user': 'bob' } });
        assert.equal(bob.headers.get('idempotent-replayed'), 'false', "bob's key is his own");
        // Both routers see req.url === '/pay': with the full path they are two operations.
        const other = await send(url, '/v2/pay', { key, headers: { 'x-user': 'alice' } });
        assert.equal(other.headers.get('idempotent-replayed'), 'false');
        assert.equal(
          (await send(url, '/v1/pay', { key: randomUUID() })).status,
          401,
          'no user: no principal',
        );
      });
      assert.equal(executions, 3);
      await engine.close();
    });
  });

  describe(`idemkit/express on Express ${major}: negative control`, () => {
    it('without the middleware a retried POST executes twice; with it, once and the retry is a replay', async () => {
      for (const withIdempotency of [false, true]) {
        const app = newApp();
        let executions = 0;
        if (withIdempotency) app.use(idempotency(baseOptions()));
        app.post('/payments', express.json(), (req, res) => {
          res.status(201).json({ n: ++executions, amount: req.body.amount });
        });
        await withApp(app, async (url) => {
          const key = randomUUID();
          const first = await send(url, '/payments', { key, body: '{"amount":10}' });
          const retry = await send(url, '/payments', { key, body: '{"amount":10}' });
          assert.equal(retry.status, 201);
          assert.equal(retry.headers.get('idempotent-replayed'), withIdempotency ? 'true' : null);
          assert.equal(retry.text === first.text, withIdempotency);
        });
        assert.equal(executions, withIdempotency ? 1 : 2, `withIdempotency=${withIdempotency}`);
      }
    });
  });

  describe(`idemkit/express on Express ${major}: throws`, () => {
    function throwingApp(errors: boolean): { app: Express; executions: () => number } {
      const app = newApp();
      let executions = 0;
      app.use(idempotency(baseOptions()));
      const fail = (res: Response) => {
        executions++;
        res.cookie('half', 'done');
        res.set('x-internal', 'node-7');
        return new Error(LEAK);
      };
      app.post('/sync', (_req, res) => {
        throw fail(res);
      });
      app.post('/next', (_req, res, next) => next(fail(res)));
      app.post('/async', (_req, res, next: NextFunction) => {
        const rejected = new Promise<void>((_resolve, reject) => setTimeout(() => reject(fail(res)), 5));
        // Express 5 takes a returned promise's rejection; Express 4 needs next(err).
        if (major === 5) return rejected;
        rejected.catch(next);
      });
      if (errors) app.use(idempotencyErrors());
      return { app, executions: () => executions };
    }

    it('a sync throw, next(err) and an async failure release the key with a sanitised 500 (idempotencyErrors)', async () => {
      const { app, executions } = throwingApp(true);
      await withApp(app, async (url) => {
        for (const path of ['/sync', '/next', '/async']) {
          const key = randomUUID();
          for (let attempt = 0; attempt < 2; attempt++) {
            const reply = await send(url, path, { key });
            assert.equal(reply.status, 500, path);
            assert.match(reply.headers.get('content-type') ?? '', /^application\/problem\+json/);
            assert.doesNotMatch(reply.text, /hunter2|charge\.ts|\bat /, path);
            assert.deepEqual(
              reply.headers.getSetCookie(),
              [],
              "the failed attempt's cookie is not on the problem",
            );
            assert.equal(reply.headers.get('x-internal'), null);
            assert.equal(reply.headers.get('idempotent-replayed'), 'false');
          }
        }
      });
      assert.equal(executions(), 6, 'every failure released its key: each retry executed');
    });

    it('negative control: without idempotencyErrors Express’s own page (with the stack outside production) is what is captured', async () => {
      const { app, executions } = throwingApp(false);
      await withApp(app, async (url) => {
        const key = randomUUID();
        const reply = await send(url, '/sync', { key });
        assert.equal(reply.status, 500);
        assert.match(
          reply.text,
          /hunter2/,
          'Express shows the error in development: why idempotencyErrors exists',
        );
        await send(url, '/sync', { key });
      });
      assert.equal(executions(), 2, 'a 5xx answer still releases the key');
    });

    it('after effectsStarted a throw holds the key as uncertain: the retry gets 409, not a second run', async () => {
      const app = newApp();
      let executions = 0;
      app.use(idempotency(baseOptions()));
      app.post('/charge', (req) => {
        executions++;
        req.idempotency?.effectsStarted();
        throw new Error(LEAK);
      });
      app.use(idempotencyErrors());
      await withApp(app, async (url) => {
        const key = randomUUID();
        const first = await send(url, '/charge', { key });
        assert.equal(first.status, 500);
        assert.doesNotMatch(first.text, /hunter2/);
        const retry = await send(url, '/charge', { key });
        assert.equal(retry.status, 409);
        assert.match(retry.text, /outcome-uncertain/);
      });
      assert.equal(executions, 1);
    });

    it("the app's own error handler before idempotencyErrors answers: that answer is captured and stored; errors of uncovered requests go on", async () => {
      const app = newApp();
      let executions = 0;
      app.use(idempotency(baseOptions()));
      app.post('/validate', () => {
        executions++;
        throw Object.assign(new Error('amount must be positive'), { status: 422 });
      });
      app.put('/thing', () => {
        throw new Error('not covered');
      });
      app.use((error: Error & { status?: number }, _req: Request, res: Response, next: NextFunction) => {
        if (error.status === 422) res.status(422).json({ error: error.message });
        else next(error);
      });
      app.use(idempotencyErrors());
      app.use((_error: Error, _req: Request, res: Response, _next: NextFunction) => {
        res.status(418).send('app says no');
      });
      await withApp(app, async (url) => {
        const key = randomUUID();
        const first = await send(url, '/validate', { key });
        const replay = await send(url, '/validate', { key });
        assert.deepEqual([first.status, first.text], [422, '{"error":"amount must be positive"}']);
        assert.deepEqual([replay.status, replay.text], [422, first.text]);
        assert.equal(replay.headers.get('idempotent-replayed'), 'true');
        const put = await send(url, '/thing', { key: randomUUID(), method: 'PUT' });
        assert.deepEqual([put.status, put.text], [418, 'app says no']);
      });
      assert.equal(executions, 1);
    });

    it('idempotencyErrors logs the error as Express would, unless the env is test', async () => {
      const app = express();
      app.disable('x-powered-by');
      app.use(idempotency(baseOptions()));
      app.post('/sync', () => {
        throw new Error(LEAK);
      });
      app.use(idempotencyErrors());
      const logged: unknown[] = [];
      const original = console.error;
      console.error = (...args: unknown[]) => logged.push(...args);
      try {
        await withApp(app, async (url) => {
          assert.equal((await send(url, '/sync', { key: randomUUID() })).status, 500);
          app.set('env', 'test');
          assert.equal((await send(url, '/sync', { key: randomUUID() })).status, 500);
        });
      } finally {
        console.error = original;
      }
      assert.equal(logged.length, 1);
      assert.match(String(logged[0]), /hunter2[\s\S]*at /);
    });
  });

  describe(`idemkit/express on Express ${major}: the body`, () => {
    it('parsers after the middleware still read the body: per route and app-wide, json/raw/text/urlencoded, gzip, streams', async () => {
      const app = newApp();
      app.use(idempotency(baseOptions()));
      app.post('/route-json', express.json(), (req, res) => {
        res.json({ got: req.body });
      });
      app.post('/raw', express.raw({ type: () => true }), (req, res) => {
        res.json({ got: (req.body as Buffer).toString('base64') });
      });
      app.post('/text', express.text({ type: () => true }), (req, res) => {
        res.json({ got: req.body });
      });
      app.post('/form', express.urlencoded({ extended: false }), (req, res) => {
        res.json({ got: req.body });
      });
      app.post('/stream', async (req, res, next) => {
        try {
          const chunks: Buffer[] = [];
          for await (const chunk of req) chunks.push(chunk as Buffer);
          res.json({ got: Buffer.concat(chunks).toString() });
        } catch (error) {
          next(error);
        }
      });
      const wide = newApp();
      wide.use(idempotency(baseOptions()));
      wide.use(express.json());
      wide.post('/json', (req, res) => {
        res.json({ got: req.body });
      });
      await withApp(app, async (url) => {
        const json = await send(url, '/route-json', { key: randomUUID(), body: '{"amount":12}' });
        assert.deepEqual(JSON.parse(json.text), { got: { amount: 12 } });
        const bytes = Buffer.from([0, 1, 2, 250, 255]);
        const raw = await send(url, '/raw', {
          key: randomUUID(),
          body: bytes,
          headers: { 'content-type': 'application/octet-stream' },
        });
        assert.equal(JSON.parse(raw.text).got, bytes.toString('base64'));
        const text = await send(url, '/text', { key: randomUUID(), body: 'plain words' });
        assert.equal(JSON.parse(text.text).got, 'plain words');
        const form = await send(url, '/form', {
          key: randomUUID(),
          body: 'a=1&b=two',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        });
        assert.deepEqual(JSON.parse(form.text).got, { a: '1', b: 'two' });
        const gzipped = await send(url, '/route-json', {
          key: randomUUID(),
          body: gzipSync('{"zipped":true}'),
          headers: { 'content-encoding': 'gzip' },
        });
        assert.deepEqual(JSON.parse(gzipped.text), { got: { zipped: true } });
        const large = 'x'.repeat(300_000);
        const streamed = await send(url, '/stream', { key: randomUUID(), body: chunkedBody([large, 'end']) });
        assert.equal(JSON.parse(streamed.text).got, `${large}end`);
      });
      await withApp(wide, async (url) => {
        const json = await send(url, '/json', { key: randomUUID(), body: chunkedBody(['{"amo', 'unt":7}']) });
        assert.deepEqual(JSON.parse(json.text), { got: { amount: 7 } });
        const empty = await send(url, '/json', { key: randomUUID(), body: '' });
        assert.deepEqual(JSON.parse(empty.text), { got: {} }, 'an empty body parses as without idemkit');
      });
    });

    it('the fingerprint is the bytes as sent: large integers stay exact, reordered keys are the same request', async () => {
      const app = newApp();
      let executions = 0;
      app.use(idempotency(baseOptions()));
      app.use(express.json());
      app.post('/pay', (_req, res) => {
        res.status(201).json({ n: ++executions });
      });
      await withApp(app, async (url) => {
        const key = randomUUID();
        assert.equal(
          (await send(url, '/pay', { key, body: '{"amount":12345678901234567890,"c":1}' })).status,
          201,
        );
        const other = await send(url, '/pay', { key, body: '{"amount":12345678901234567891,"c":1}' });
        assert.equal(other.status, 422);
        const reordered = await send(url, '/pay', { key, body: '{"c":1, "amount":12345678901234567890}' });
        assert.equal(reordered.headers.get('idempotent-replayed'), 'true');
      });
      assert.equal(executions, 1);
    });

    it('a parser in front with verify: keepRawBody hands over the exact bytes', async () => {
      const app = newApp();
      let executions = 0;
      app.use(express.json({ verify: keepRawBody }));
      app.use(idempotency(baseOptions()));
      app.post('/pay', (req, res) => {
        res.status(201).json({ n: ++executions, amount: req.body.amount, raw: rawBodyOf(req)?.length });
      });
      await withApp(app, async (url) => {
        const key = randomUUID();
        const body = '{"amount":12345678901234567890}';
        const first = await send(url, '/pay', { key, body });
        assert.deepEqual(JSON.parse(first.text), { n: 1, amount: 12345678901234567000, raw: body.length });
        assert.equal((await send(url, '/pay', { key, body: '{"amount":12345678901234567891}' })).status, 422);
        assert.equal((await send(url, '/pay', { key, body })).headers.get('idempotent-replayed'), 'true');
      });
      assert.equal(executions, 1);
    });

    it('a parser in front without the hook: req.body as canonical JSON (the documented last resort), a raw Buffer as it is', async () => {
      const app = newApp();
      let executions = 0;
      app.use('/json', express.json());
      app.use('/raw', express.raw({ type: () => true }));
      app.use(idempotency(baseOptions()));
      app.post(['/json', '/raw'], (_req, res) => {
        res.status(201).json({ n: ++executions });
      });
      await withApp(app, async (url) => {
        const key = randomUUID();
        await send(url, '/json', { key, body: '{"a":1,"b":{"c":2,"d":3}}' });
        const reordered = await send(url, '/json', { key, body: '{ "b": {"d":3,"c":2}, "a": 1 }' });
        assert.equal(reordered.headers.get('idempotent-replayed'), 'true');
        assert.equal((await send(url, '/json', { key, body: '{"a":2,"b":{"c":2,"d":3}}' })).status, 422);
        // The caveat the docs state: JSON.parse rounded both amounts to one double already.
        const bigKey = randomUUID();
        await send(url, '/json', { key: bigKey, body: '{"amount":12345678901234567890}' });
        const rounded = await send(url, '/json', { key: bigKey, body: '{"amount":12345678901234567891}' });
        assert.equal(
          rounded.headers.get('idempotent-replayed'),
          'true',
          'precision was lost before idemkit saw it',
        );

        const rawKey = randomUUID();
        const octets = { 'content-type': 'application/octet-stream' };
        await send(url, '/raw', { key: rawKey, body: Buffer.from([1, 2, 3]), headers: octets });
        const sameRaw = await send(url, '/raw', {
          key: rawKey,
          body: Buffer.from([1, 2, 3]),
          headers: octets,
        });
        assert.equal(sameRaw.headers.get('idempotent-replayed'), 'true');
        const otherRaw = await send(url, '/raw', {
          key: rawKey,
          body: Buffer.from([1, 2, 4]),
          headers: octets,
        });
        assert.equal(otherRaw.status, 422);
      });
      assert.equal(executions, 3);
    });

    it('a body over maxBodyBytes gets 413 before any store call, with Content-Length or chunked', async () => {
      const spy = countingStore(memoryStore({ onWarning() {} }));
      const app = newApp();
      let executions = 0;
      app.use(idempotency({ store: spy.store, sweepIntervalMs: 0, maxBodyBytes: 64 }));
      app.post('/upload', express.json(), (_req, res) => {
        res.json({ n: ++executions });
      });
      await withApp(app, async (url) => {
        const sized = await send(url, '/upload', {
          key: randomUUID(),
          body: JSON.stringify({ pad: 'x'.repeat(200) }),
        });
        assert.equal(sized.status, 413);
        assert.match(sized.text, /payload-too-large/);
        const chunked = await send(url, '/upload', {
          key: randomUUID(),
          body: chunkedBody(['x'.repeat(50), 'y'.repeat(50)]),
        });
        assert.equal(chunked.status, 413);
        assert.equal(spy.calls(), 0, 'no store call');
        assert.equal((await send(url, '/upload', { key: randomUUID(), body: '{"ok":1}' })).status, 200);
      });
      assert.equal(executions, 1);
    });

    it("with a parser in front an oversized body is the parser's 413: no store call, no execution", async () => {
      const spy = countingStore(memoryStore({ onWarning() {} }));
      const app = newApp();
      let executions = 0;
      app.use(express.json({ verify: keepRawBody }));
      app.use(idempotency({ store: spy.store, sweepIntervalMs: 0 }));
      app.post('/upload', (_req, res) => {
        res.json({ n: ++executions });
      });
      app.use(idempotencyErrors());
      await withApp(app, async (url) => {
        // Over body-parser's 100 kB default, under idemkit's 1 MiB.
        const body = JSON.stringify({ pad: 'x'.repeat(200_000) });
        assert.equal((await send(url, '/upload', { key: randomUUID(), body })).status, 413);
        assert.equal(
          (await send(url, '/upload', { key: randomUUID(), body: chunkedBody([body]) })).status,
          413,
        );
      });
      assert.equal(spy.calls(), 0);
      assert.equal(executions, 0);
    });

    it('a client that goes away mid-body claims nothing, and the server keeps answering', async () => {
      const spy = countingStore(memoryStore({ onWarning() {} }));
      const app = newApp();
      app.use(idempotency({ store: spy.store, sweepIntervalMs: 0 }));
      app.post('/pay', (_req, res) => {
        res.status(201).end();
      });
      await withApp(app, async (url) => {
        const { port } = new URL(url);
        await new Promise<void>((resolve, reject) => {
          const socket = connect(Number(port), '127.0.0.1', () => {
            socket.write(
              `POST /pay HTTP/1.1\r\nhost: x\r\nauthorization: ${AUTH}\r\nidempotency-key: k1\r\ncontent-length: 100\r\n\r\n{"half":`,
            );
            setTimeout(() => socket.destroy(), 50);
          });
          socket.on('close', () => resolve());
          socket.on('error', reject);
        });
        await new Promise((resolve) => setTimeout(resolve, 50));
        assert.equal(spy.calls(), 0);
        assert.equal((await send(url, '/pay', { key: randomUUID() })).status, 201);
      });
    });
  });

  describe(`idemkit/express on Express ${major}: what is captured`, () => {
    const file = join(tmp, `receipt-${major}.txt`);
    writeFileSync(file, 'receipt #1\n');

    function captureApp(): { app: Express; executions: Map<string, number> } {
      const app = newApp();
      const executions = new Map<string, number>();
      app.use((_req, res, next) => {
        // Earlier middleware's header: on every answer, replays included.
        res.set('access-control-allow-origin', '*');
        next();
      });
      app.use(idempotency(baseOptions()));
      app.use((req, _res, next) => {
        executions.set(req.path, (executions.get(req.path) ?? 0) + 1);
        next();
      });
      app.post('/json', (_req, res) => {
        res.cookie('a', '1').cookie('b', '2').set('x-internal', 'node-7').set('etag', '"v1"');
        res.status(201).json({ ok: true });
      });
      app.post('/send-bytes', (_req, res) => {
        res.type('application/octet-stream').send(Buffer.from(Array.from({ length: 256 }, (_, i) => i)));
      });
      app.post('/end', (_req, res) => {
        res.status(204).end();
      });
      app.post('/write', (_req, res) => {
        res.setHeader('content-type', 'text/plain');
        res.write('one ');
        res.write(Buffer.from('two '));
        setTimeout(() => res.end('three'), 5);
      });
      app.post('/pipe', (_req, res) => {
        res.type('text/plain');
        Readable.from(['a', 'b', 'c']).pipe(res);
      });
      app.post('/file', (_req, res, next) => {
        res.sendFile(file, (error) => {
          if (error) next(error);
        });
      });
      app.post('/write-head', (_req, res) => {
        res.writeHead(202, [
          'content-type',
          'text/plain',
          'set-cookie',
          'x=1',
          'set-cookie',
          'y=2',
          'link',
          '</a>',
        ]);
        res.end('flat');
      });
      app.post('/write-head-pairs', (_req, res) => {
        res.writeHead(201, 'Made', [
          ['content-type', 'text/plain'],
          ['location', '/payments/3'],
        ]);
        res.end('pairs');
      });
      app.post('/redirect', (_req, res) => {
        res.redirect(303, '/payments/9');
      });
      // A 4xx error (http-errors) is the client's: Express's own answer to it is what is captured.
      app.post('/missing-file', (_req, res, next) => {
        res.sendFile(join(tmp, 'does-not-exist.txt'), (error) => next(error));
      });
      app.post('/bad-json', express.json(), (_req, res) => {
        res.json({ parsed: true });
      });
      app.use(idempotencyErrors());
      return { app, executions };
    }

    it('send/json with cookies, bytes, status().end, write+end, pipe, sendFile, writeHead with arrays, redirect, 4xx errors', async () => {
      const { app, executions } = captureApp();
      await withApp(app, async (url) => {
        const twice = async (path: string) => {
          const key = randomUUID();
          const first = await send(url, path, { key, redirect: 'manual' });
          const replay = await send(url, path, { key, redirect: 'manual' });
          assert.equal(first.headers.get('idempotent-replayed'), 'false', path);
          assert.equal(replay.headers.get('idempotent-replayed'), 'true', path);
          assert.equal(replay.status, first.status, path);
          assert.deepEqual(replay.bytes, first.bytes, path);
          assert.equal(replay.headers.get('content-type'), first.headers.get('content-type'), path);
          assert.deepEqual(replay.headers.getSetCookie(), [], `${path}: no cookie on a replay`);
          assert.equal(replay.headers.get('access-control-allow-origin'), '*', path);
          return { first, replay };
        };

        const json = await twice('/json');
        assert.equal(json.first.status, 201);
        assert.deepEqual(json.first.headers.getSetCookie(), ['a=1; Path=/', 'b=2; Path=/']);
        assert.equal(json.first.headers.get('x-internal'), 'node-7');
        assert.equal(json.replay.headers.get('x-internal'), null);
        assert.equal(json.replay.headers.get('etag'), '"v1"');

        const bytes = await twice('/send-bytes');
        assert.equal(bytes.first.bytes.length, 256);
        assert.equal(bytes.replay.headers.get('content-type'), 'application/octet-stream');

        assert.equal((await twice('/end')).replay.status, 204);
        assert.equal((await twice('/write')).replay.text, 'one two three');
        assert.equal((await twice('/pipe')).replay.text, 'abc');
        assert.equal((await twice('/file')).replay.text, 'receipt #1\n');

        const flat = await twice('/write-head');
        assert.deepEqual([flat.first.status, flat.first.text], [202, 'flat']);
        assert.deepEqual(flat.first.headers.getSetCookie(), ['x=1', 'y=2']);
        assert.equal(flat.replay.headers.get('link'), '</a>');

        const pairs = await twice('/write-head-pairs');
        assert.deepEqual([pairs.replay.status, pairs.replay.text], [201, 'pairs']);
        assert.equal(pairs.replay.headers.get('location'), '/payments/3');

        const redirect = await twice('/redirect');
        assert.equal(redirect.replay.status, 303);
        assert.equal(redirect.replay.headers.get('location'), '/payments/9');

        assert.equal((await twice('/missing-file')).replay.status, 404);
        const badKey = randomUUID();
        const bad = await send(url, '/bad-json', { key: badKey, body: '{"amount":' });
        assert.equal(bad.status, 400, "body-parser's 400 stays a 400");
        const badAgain = await send(url, '/bad-json', { key: badKey, body: '{"amount":' });
        assert.deepEqual([badAgain.status, badAgain.headers.get('idempotent-replayed')], [400, 'true']);
      });
      for (const [path, count] of executions) assert.equal(count, 1, `${path} ran once`);
      assert.equal(executions.size, 11);
    });
  });

  describe(`idemkit/express on Express ${major}: how a held response is routed`, () => {
    it('a middleware in front that wraps res.write/res.end per response (as compression does) is captured through its wrapper: ran once, the replay has its bytes', async () => {
      const app = newApp();
      let executions = 0;
      app.use((_req, res, next) => {
        const end = res.end;
        const write = res.write;
        // Like compression: own properties set per response, calling the saved methods.
        res.write = function (this: Response, chunk: unknown, ...rest: unknown[]) {
          return (write as (...a: unknown[]) => boolean).call(this, String(chunk).toUpperCase(), ...rest);
        } as typeof res.write;
        res.end = function (this: Response, chunk?: unknown, ...rest: unknown[]) {
          const text =
            typeof chunk === 'string' || chunk instanceof Uint8Array
              ? Buffer.from(chunk).toString().toUpperCase()
              : chunk;
          return (end as (...a: unknown[]) => Response).call(this, text, ...rest);
        } as typeof res.end;
        next();
      });
      app.use(idempotency(baseOptions()));
      app.post('/shout', (_req, res) => {
        executions++;
        res.status(201).type('text/plain');
        res.write('hello ');
        res.end('world');
      });
      await withApp(app, async (url) => {
        const key = randomUUID();
        const first = await send(url, '/shout', { key });
        const replay = await send(url, '/shout', { key });
        assert.deepEqual([first.status, first.text], [201, 'HELLO WORLD']);
        assert.deepEqual(
          [replay.status, replay.text, replay.headers.get('idempotent-replayed')],
          [201, 'HELLO WORLD', 'true'],
        );
      });
      assert.equal(executions, 1);
    });

    it('req.idempotency reaches handlers in a mounted sub-app, is undefined for requests not under a claim, and an app may assign it', async () => {
      const app = newApp();
      const sub = newApp();
      const seen: string[] = [];
      app.use(idempotency(baseOptions()));
      sub.post('/pay', (req, res) => {
        seen.push(req.idempotency ? 'claimed' : 'none');
        res.status(201).json({ ok: true });
      });
      sub.get('/pay', (req, res) => {
        seen.push(req.idempotency ? 'claimed' : 'none');
        (req as Request).idempotency = { fencingToken: 7 } as NonNullable<Request['idempotency']>;
        res.json({ assigned: req.idempotency?.fencingToken });
      });
      app.use('/sub', sub);
      await withApp(app, async (url) => {
        const first = await send(url, '/sub/pay', { key: randomUUID() });
        assert.equal(first.status, 201, first.text);
        assert.equal((await send(url, '/sub/pay', { method: 'GET' })).text, '{"assigned":7}');
      });
      assert.deepEqual(seen, ['claimed', 'none']);
      assert.ok(!Object.hasOwn(IncomingMessage.prototype, 'idempotency'), "Node's prototype is untouched");
    });

    it("Node's own ServerResponse.prototype is never patched; the app's other responses answer as before", async () => {
      const nodeMethods = ['writeHead', 'write', 'end', 'flushHeaders', 'destroy'].map(
        (name) => (ServerResponse.prototype as unknown as Record<string, unknown>)[name],
      );
      const app = newApp();
      app.use(idempotency(baseOptions()));
      app.post('/pay', (_req, res) => {
        res.status(201).json({ paid: true });
      });
      app.get('/pay', (_req, res) => {
        res.write('streamed ');
        res.end('get');
      });
      await withApp(app, async (url) => {
        for (let i = 0; i < 3; i++) {
          assert.equal((await send(url, '/pay', { key: randomUUID() })).status, 201);
          const get = await send(url, '/pay', { method: 'GET' });
          assert.deepEqual(
            [get.status, get.text, get.headers.get('idempotent-replayed')],
            [200, 'streamed get', null],
          );
        }
      });
      assert.deepEqual(
        ['writeHead', 'write', 'end', 'flushHeaders', 'destroy'].map(
          (name) => (ServerResponse.prototype as unknown as Record<string, unknown>)[name],
        ),
        nodeMethods,
      );
    });

    it('a held response and its request get no properties from idemkit, req.idempotency included (each one added copies the hidden class Express gives every request and response)', async () => {
      const app = newApp();
      const added: string[][] = [];
      app.use(idempotency(baseOptions()));
      app.post('/pay', express.json(), (req, res) => {
        const ours = (o: object) =>
          Reflect.ownKeys(o)
            .map(String)
            .filter((k) => /idemkit|^(idempotency|writeHead|write|end|flushHeaders|destroy)$/.test(k));
        assert.ok(req.idempotency?.downstreamKey(), 'the context is there all the same');
        added.push([...ours(req), ...ours(res)]);
        res.status(201).json({ amount: req.body.amount });
      });
      await withApp(app, async (url) => {
        const first = await send(url, '/pay', { key: randomUUID(), body: '{"amount":5}' });
        assert.deepEqual([first.status, first.text], [201, '{"amount":5}']);
      });
      assert.deepEqual(added, [[]]);
    });
  });

  describe(`idemkit/express on Express ${major}: responses that fail midway`, () => {
    it('a stream that fails mid-response, res.destroy(): the key is free again within 5 s', async () => {
      const app = newApp();
      const executions = new Map<string, number>();
      app.use(idempotency(baseOptions()));
      app.use((req, _res, next) => {
        executions.set(req.path, (executions.get(req.path) ?? 0) + 1);
        next();
      });
      app.post('/broken-stream', (_req, res) => {
        let pushed = false;
        const source = new Readable({
          read() {
            if (pushed) return;
            pushed = true;
            this.push('first part ');
            setTimeout(() => this.destroy(new Error(LEAK)), 5);
          },
        });
        res.type('text/plain');
        pipeline(source, res).catch(() => {});
      });
      app.post('/destroy', (_req, res) => {
        res.status(201).write('partial');
        setTimeout(() => res.destroy(), 5);
      });
      app.use(idempotencyErrors());
      await withApp(app, async (url) => {
        for (const path of ['/broken-stream', '/destroy']) {
          const key = randomUUID();
          for (let attempt = 0; attempt < 2; attempt++) {
            // Each attempt gets an answer (or a cut connection), never a hang.
            const outcome = await send(url, path, { key }).then(
              (reply) => reply.status,
              (error: Error) => (error.name === 'TimeoutError' ? 'hung' : 'cut'),
            );
            assert.notEqual(outcome, 'hung', path);
          }
        }
      });
      assert.deepEqual(
        Object.fromEntries(executions),
        { '/broken-stream': 2, '/destroy': 2 },
        'every failure ended its execution and released the key',
      );
    });
  });
}

describe('idemkit/express: the cost of a captured response', () => {
  it('a response keeps V8 fast properties after the capture gave back its methods (no delete)', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--allow-natives-syntax', '--import', 'tsx', 'test/support/express-shape-child.ts'],
      { timeout: 30_000 },
    );
    assert.deepEqual(JSON.parse(stdout), { fast: [true, true] });
  });
});
