import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import {
  BadRequestException,
  Body,
  Controller,
  Header,
  HttpCode,
  type LoggerService,
  Module,
  Post,
  Redirect,
  Req,
  Res,
  StreamableFile,
} from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { of } from 'rxjs';
import {
  type HandlerContext,
  IdempotencyContext,
  IdempotencyInterceptor,
  IdempotencyModule,
  Idempotent,
} from '../../src/adapters/nestjs.js';
import { createIdempotency } from '../../src/core/engine.js';
import type { IdempotencyOptions } from '../../src/core/options.js';
import type { IdempotencyStore } from '../../src/core/store.js';
import { memoryStore } from '../../src/index.js';
import { DEFAULT_AUTH, post, type Reply } from '../../src/testing/http-harness.js';
import { rawUpload } from '../../src/testing/raw-http.js';
import { countingStore } from '../../src/testing/store-spy.js';
import { type NestPlatform, type StartedNest, startNest } from '../support/nestjs-reference.js';

const SECRET = 'db password hunter2 at /srv/app/payments.ts';
const quiet = { onWarning() {}, sweepIntervalMs: 0 };
const executions = new Map<string, number>();
const seen = new Map<
  string,
  { sameObject: boolean; downstreamKey: string | undefined; ownProperty: boolean }[]
>();

function count(op: string): number {
  const n = (executions.get(op) ?? 0) + 1;
  executions.set(op, n);
  return n;
}

/** Express's `req` or Fastify's `request`, as the handlers use it. */
interface AnyRequest extends AsyncIterable<Buffer> {
  headers: Record<string, string | undefined>;
  idempotency?: HandlerContext;
  body?: unknown;
  raw?: AsyncIterable<Buffer>;
}
/** Express's `res` or Fastify's `reply`. */
type AnyResponse = ServerResponse & {
  raw?: ServerResponse;
  code?: (n: number) => AnyResponse;
  send: (b: unknown) => void;
};

const op = (req: AnyRequest) => req.headers['x-op'] ?? '';

@Controller()
class PaymentsController {
  @Post('pay')
  @HttpCode(202)
  @Header('Location', '/payments/42')
  pay(@Req() req: AnyRequest, @Body() body: unknown, @IdempotencyContext() ctx: HandlerContext | undefined) {
    const n = count(op(req));
    const list = seen.get(op(req)) ?? [];
    list.push({
      sameObject: req.idempotency === ctx,
      downstreamKey: ctx?.downstreamKey(),
      ownProperty: Object.hasOwn(req, 'idempotency'),
    });
    seen.set(op(req), list);
    if (req.headers['x-fail-first'] && n === 1) throw new Error(SECRET);
    return { n, body, fencing: ctx?.fencingToken, signal: ctx?.signal instanceof AbortSignal };
  }

  @Post('throw')
  throwIt(@Req() req: AnyRequest) {
    count(op(req));
    throw new Error(SECRET);
  }

  @Post('refuse')
  refuse(@Req() req: AnyRequest) {
    count(op(req));
    throw new BadRequestException('amount must be positive');
  }

  @Post('raw')
  raw(@Req() req: AnyRequest, @Res() res: AnyResponse) {
    const n = count(op(req));
    if (res.raw) res.code?.(201).send({ n, via: 'reply' });
    else
      (res as unknown as { status(n: number): { json(b: unknown): void } })
        .status(201)
        .json({ n, via: 'res' });
  }

  @Post('file')
  file(@Req() req: AnyRequest) {
    const n = count(op(req));
    return new StreamableFile(Buffer.from(`file bytes ${n}\u0000\u00ff`), { type: 'application/x-test' });
  }

  @Post('redirect')
  @Redirect('/payments/9', 303)
  redirect(@Req() req: AnyRequest) {
    count(op(req));
  }

  @Post('gone')
  gone(@Req() req: AnyRequest) {
    count(op(req));
    // An http-errors 4xx (createError(410)): Nest answers it with its status, so it is an answer.
    throw Object.assign(new Error('this offer has expired'), { status: 410, statusCode: 410, expose: true });
  }

  @Post('observable')
  observable(@Req() req: AnyRequest) {
    return of({ n: count(op(req)), from: 'observable' });
  }

  @Post('broken-file')
  brokenFile(@Req() req: AnyRequest) {
    count(op(req));
    let reads = 0;
    const stream = new Readable({
      read() {
        if (reads++ === 0) this.push('first part of the file, then the disk fails');
        else this.destroy(new Error(SECRET));
      },
    });
    return new StreamableFile(stream, { type: 'text/plain' });
  }

  @Post('cut')
  cut(@Req() req: AnyRequest, @Res() res: AnyResponse) {
    const n = count(op(req));
    const node = res.raw ?? res;
    if (n === 1) {
      node.writeHead(200, { 'content-type': 'text/plain' });
      node.write('half an answer');
      setTimeout(() => node.destroy(), 20);
      return;
    }
    node.writeHead(200, { 'content-type': 'text/plain' });
    node.end(`whole answer ${n}`);
  }

  @Post('text')
  async text(@Req() req: AnyRequest) {
    count(op(req));
    // Express parses no text/plain: the interceptor read the stream and put it back.
    if (typeof req.body === 'string') return { text: req.body };
    const chunks: Buffer[] = [];
    for await (const chunk of req.raw ?? req) chunks.push(chunk);
    return { text: Buffer.concat(chunks).toString('utf8') };
  }

  @Post('off')
  @Idempotent(false)
  off(@Req() req: AnyRequest) {
    return { n: count(op(req)) };
  }

  @Post('optional')
  @Idempotent({ required: false })
  optional(@Req() req: AnyRequest) {
    return { n: count(op(req)) };
  }
}

/** Settings on the controller and on a handler: merged name by name. */
@Controller('optional')
@Idempotent({ required: false })
class OptionalController {
  @Post('merged')
  @Idempotent({ retentionMs: 60_000 })
  merged(@Req() req: AnyRequest) {
    return { n: count(op(req)) };
  }

  @Post('off')
  @Idempotent(false)
  off(@Req() req: AnyRequest) {
    return { n: count(op(req)) };
  }
}

/** The same handler, in an app where nothing may be bound (the negative control). */
@Controller()
class PlainController {
  @Post('pay')
  pay(@Req() req: AnyRequest) {
    return { n: count(op(req)) };
  }
}

const CAPTURED = {
  '/raw': '@Res() writes',
  '/file': 'a StreamableFile',
  '/observable': 'an Observable',
  '/gone': 'an http-errors 4xx',
};

function bound(options: IdempotencyOptions | ReturnType<typeof createIdempotency>) {
  return {
    imports: [IdempotencyModule.forRoot(options)],
    controllers: [PaymentsController],
    providers: [{ provide: APP_INTERCEPTOR, useExisting: IdempotencyInterceptor }],
  };
}

function send(
  url: string,
  path: string,
  op: string,
  key: string | undefined,
  extra: Partial<Parameters<typeof post>[2]> = {},
) {
  return post(url, path, { key, op, body: '{"amount":1000}', ...extra } as Parameters<typeof post>[2]);
}

function problemType(reply: Reply): string | undefined {
  return reply.problem?.type;
}

for (const platform of ['express', 'fastify'] as NestPlatform[]) {
  describe(`idemkit/nestjs on ${platform}`, () => {
    let app: StartedNest;
    let store: ReturnType<typeof countingStore>;
    const logged: string[] = [];
    const logger: LoggerService = {
      log() {},
      warn() {},
      error: (...args: unknown[]) =>
        logged.push(args.map((a) => (a instanceof Error ? a.message : String(a))).join(' ')),
    };
    before(async () => {
      store = countingStore(memoryStore(quiet));
      app = await startNest(platform, bound({ store: store.store, maxBodyBytes: 4_096, ...quiet }), {
        logger,
        configure: (nest) => nest.enableCors(),
      });
    });
    after(() => app.close());

    it('a retried POST runs once: the replay has the status, @Header and bytes of the first answer', async () => {
      const key = randomUUID();
      const first = await send(app.url, '/pay', `${platform}-once`, key);
      assert.equal(first.status, 202);
      assert.equal(first.headers.get('location'), '/payments/42');
      assert.equal(first.headers.get('idempotent-replayed'), 'false');
      const replay = await send(app.url, '/pay', `${platform}-once`, key);
      assert.equal(replay.status, 202);
      assert.equal(replay.headers.get('idempotent-replayed'), 'true');
      assert.equal(replay.headers.get('location'), '/payments/42');
      assert.deepEqual(replay.bytes, first.bytes);
      assert.equal(executions.get(`${platform}-once`), 1);
      const body = JSON.parse(first.text) as { body: unknown; fencing: number; signal: boolean };
      assert.deepEqual(body.body, { amount: 1000 }, 'the handler still gets the parsed body');
      assert.equal(typeof body.fencing, 'number');
      assert.equal(body.signal, true);
    });

    it('the context is req.idempotency and @IdempotencyContext(); downstreamKey() is stable across retries', async () => {
      const key = randomUUID();
      const o = `${platform}-ctx`;
      const failed = await send(app.url, '/pay', o, key, { headers: { 'x-fail-first': '1' } });
      assert.equal(failed.status, 500);
      const retried = await send(app.url, '/pay', o, key, { headers: { 'x-fail-first': '1' } });
      assert.equal(retried.status, 202);
      const calls = seen.get(o) ?? [];
      assert.equal(calls.length, 2);
      assert.ok(calls.every((c) => c.sameObject));
      // On Express it is an accessor on the app's request prototype: an own property would copy
      // the hidden class Express gives each request. Fastify's requests get an own property.
      assert.deepEqual(
        calls.map((c) => c.ownProperty),
        platform === 'express' ? [false, false] : [true, true],
      );
      assert.ok(calls[0]?.downstreamKey);
      assert.equal(calls[1]?.downstreamKey, calls[0]?.downstreamKey);
    });

    it('a handler that throws frees the key with a sanitised 500; Nest still logs the error', async () => {
      const key = randomUUID();
      const o = `${platform}-throw`;
      const failed = await send(app.url, '/throw', o, key);
      assert.equal(failed.status, 500);
      assert.equal(failed.headers.get('content-type'), 'application/problem+json');
      assert.ok(!failed.text.includes('hunter2') && !failed.text.includes('/srv/'), failed.text);
      await send(app.url, '/throw', o, key);
      assert.equal(executions.get(o), 2, 'the retry executes again');
      assert.ok(
        logged.some((line) => line.includes('hunter2')),
        'the server log keeps the error',
      );
    });

    it('an HttpException is an answer: stored and replayed like a returned one', async () => {
      const key = randomUUID();
      const o = `${platform}-refuse`;
      const first = await send(app.url, '/refuse', o, key);
      assert.equal(first.status, 400);
      assert.match(first.text, /amount must be positive/);
      const replay = await send(app.url, '/refuse', o, key);
      assert.equal(replay.headers.get('idempotent-replayed'), 'true');
      assert.deepEqual(replay.bytes, first.bytes);
      assert.equal(executions.get(o), 1);
    });

    for (const [path, status] of [
      ['/raw', 201],
      ['/file', 201],
      ['/observable', 201],
      ['/gone', 410],
    ] as const) {
      it(`captures ${path} (${CAPTURED[path]}) and replays it byte for byte`, async () => {
        const key = randomUUID();
        const o = `${platform}-${path}`;
        const first = await send(app.url, path, o, key);
        assert.equal(first.status, status);
        const replay = await send(app.url, path, o, key);
        assert.equal(replay.headers.get('idempotent-replayed'), 'true');
        assert.equal(replay.status, status);
        assert.deepEqual(replay.bytes, first.bytes);
        assert.equal(replay.headers.get('content-type'), first.headers.get('content-type'));
        assert.equal(replay.headers.get('location'), first.headers.get('location'));
        assert.equal(executions.get(o), 1);
      });
    }

    it('captures @Redirect() and replays it', async () => {
      const key = randomUUID();
      const redirect = () =>
        fetch(`${app.url}/redirect`, {
          method: 'POST',
          redirect: 'manual',
          headers: { 'idempotency-key': key, authorization: DEFAULT_AUTH, 'x-op': `${platform}-redirect` },
          signal: AbortSignal.timeout(5_000),
        });
      const first = await redirect();
      assert.equal(first.status, 303);
      assert.equal(first.headers.get('location'), '/payments/9');
      const replay = await redirect();
      assert.equal(replay.status, 303);
      assert.equal(replay.headers.get('location'), '/payments/9');
      assert.equal(replay.headers.get('idempotent-replayed'), 'true');
      assert.equal(executions.get(`${platform}-redirect`), 1);
    });

    it('a StreamableFile that fails before it ends frees the key (no stored 400) without leaking the error', async () => {
      const key = randomUUID();
      const o = `${platform}-broken`;
      const failed = await send(app.url, '/broken-file', o, key);
      assert.equal(failed.status, 500);
      assert.equal(problemType(failed), 'urn:idemkit:problem:handler-error');
      assert.ok(!failed.text.includes('hunter2'));
      const retry = await send(app.url, '/broken-file', o, key);
      assert.equal(retry.headers.get('idempotent-replayed'), 'false');
      assert.equal(executions.get(o), 2);
    });

    it('a response destroyed midway frees the key: the retry gets an answer within 5 s', async () => {
      const key = randomUUID();
      const o = `${platform}-cut`;
      await assert.rejects(send(app.url, '/cut', o, key));
      const retry = await Promise.race([
        send(app.url, '/cut', o, key),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer within 5 s')), 5_000)),
      ]);
      assert.equal(retry.status, 200);
      assert.equal(retry.text, 'whole answer 2');
    });

    it('replays and problems keep headers set before the handler (CORS)', async () => {
      const key = randomUUID();
      const origin = { origin: 'https://shop.example' };
      await send(app.url, '/pay', `${platform}-cors`, key, { headers: origin });
      const replay = await send(app.url, '/pay', `${platform}-cors`, key, { headers: origin });
      assert.equal(replay.headers.get('idempotent-replayed'), 'true');
      assert.equal(replay.headers.get('access-control-allow-origin'), '*');
      const missing = await send(app.url, '/pay', `${platform}-cors`, undefined, { headers: origin });
      assert.equal(problemType(missing), 'urn:idemkit:problem:missing-key');
      assert.equal(missing.headers.get('access-control-allow-origin'), '*');
    });

    it('@Idempotent(false) leaves a handler uncovered; @Idempotent({ required: false }) lets keyless requests through', async () => {
      const key = randomUUID();
      await send(app.url, '/off', `${platform}-off`, key);
      const again = await send(app.url, '/off', `${platform}-off`, key);
      assert.equal(again.headers.get('idempotent-replayed'), null);
      assert.equal(executions.get(`${platform}-off`), 2);
      assert.equal((await send(app.url, '/optional', `${platform}-opt`, undefined)).status, 201);
      assert.equal((await send(app.url, '/pay', `${platform}-req`, undefined)).status, 400);
      const keyed = randomUUID();
      await send(app.url, '/optional', `${platform}-opt-key`, keyed);
      const replay = await send(app.url, '/optional', `${platform}-opt-key`, keyed);
      assert.equal(
        replay.headers.get('idempotent-replayed'),
        'true',
        'bound globally and by @Idempotent(): one claim',
      );
    });

    it('a body no Nest parser reads (text/plain) is fingerprinted and still reaches the handler', async () => {
      const key = randomUUID();
      const o = `${platform}-text`;
      const first = await send(app.url, '/text', o, key, { body: 'pay 1000 EUR', contentType: 'text/plain' });
      assert.equal(first.status, 201);
      assert.deepEqual(JSON.parse(first.text), { text: 'pay 1000 EUR' });
      const changed = await send(app.url, '/text', o, key, {
        body: 'pay 9000 EUR',
        contentType: 'text/plain',
      });
      assert.equal(changed.status, 422);
      assert.equal(executions.get(o), 1);
    });

    it('a body over maxBodyBytes gets 413 before any store call (declared, chunked, or read by Nest)', async () => {
      const before = store.calls();
      const o = `${platform}-big`;
      const big = await send(app.url, '/pay', o, randomUUID(), {
        body: JSON.stringify({ pad: 'x'.repeat(8_000) }),
      });
      assert.equal(big.status, 413);
      assert.equal(problemType(big), 'urn:idemkit:problem:payload-too-large');
      for (const chunked of [false, true]) {
        const upload = await rawUpload(app.url, {
          path: '/pay',
          headers: [
            ['idempotency-key', randomUUID()],
            ['authorization', DEFAULT_AUTH],
            ['content-type', 'application/json'],
            ['x-op', o],
          ],
          totalBytes: 50 * 1_048_576,
          chunked,
        });
        assert.equal(upload.status, 413);
        assert.ok(upload.sentBytes < 50 * 1_048_576, 'answered before the upload ended');
      }
      assert.equal(store.calls(), before);
      assert.equal(executions.get(o), undefined);
    });
  });

  describe(`idemkit/nestjs on ${platform}: setups`, () => {
    it('negative control: without the interceptor a retried POST executes twice, with it once', async () => {
      const o = `${platform}-negative`;
      const plain = await startNest(platform, { controllers: [PlainController] });
      try {
        const key = randomUUID();
        await send(plain.url, '/pay', o, key);
        await send(plain.url, '/pay', o, key);
        assert.equal(executions.get(o), 2);
      } finally {
        await plain.close();
      }
      const covered = await startNest(platform, {
        imports: [IdempotencyModule.forRoot({ store: memoryStore(quiet), ...quiet })],
        controllers: [PlainController],
        providers: [{ provide: APP_INTERCEPTOR, useExisting: IdempotencyInterceptor }],
      });
      try {
        const key = randomUUID();
        await send(covered.url, '/pay', `${o}-covered`, key);
        const replay = await send(covered.url, '/pay', `${o}-covered`, key);
        assert.equal(replay.headers.get('idempotent-replayed'), 'true');
        assert.equal(executions.get(`${o}-covered`), 1);
      } finally {
        await covered.close();
      }
    });

    it("a handler's settings are merged over its controller's; @Idempotent(false) on the handler wins", async () => {
      const app = await startNest(platform, {
        imports: [IdempotencyModule.forRoot({ store: memoryStore(quiet), ...quiet })],
        controllers: [OptionalController],
      });
      try {
        const o = `${platform}-merged`;
        assert.equal(
          (await send(app.url, '/optional/merged', o, undefined)).status,
          201,
          'required: false from the class',
        );
        const key = randomUUID();
        await send(app.url, '/optional/merged', o, key);
        assert.equal(
          (await send(app.url, '/optional/merged', o, key)).headers.get('idempotent-replayed'),
          'true',
        );
        assert.equal(executions.get(o), 2);
        await send(app.url, '/optional/off', `${o}-off`, key);
        await send(app.url, '/optional/off', `${o}-off`, key);
        assert.equal(executions.get(`${o}-off`), 2);
      } finally {
        await app.close();
      }
    });

    it('@Idempotent() refuses unknown settings where it is applied', () => {
      assert.throws(() => Idempotent({ retries: 3 } as never), /retries is not a per-handler option/);
    });

    it('without rawBody: true a parsed body is refused with an error naming the fix', async () => {
      const logged: string[] = [];
      const logger: LoggerService = { log() {}, warn() {}, error: (m: unknown) => logged.push(String(m)) };
      const app = await startNest(platform, bound({ store: memoryStore(quiet), ...quiet }), {
        rawBody: false,
        logger,
      });
      try {
        const refused = await send(app.url, '/pay', `${platform}-noraw`, randomUUID());
        assert.equal(refused.status, 500);
        assert.equal(executions.get(`${platform}-noraw`), undefined);
        assert.ok(
          logged.some((line) => line.includes('rawBody: true')),
          logged.join('\n'),
        );
      } finally {
        await app.close();
      }
    });

    it('forRootAsync takes injected options; a shared engine refuses per-handler options', async () => {
      const STORE = 'PAYMENTS_STORE';
      @Module({ providers: [{ provide: STORE, useValue: memoryStore(quiet) }], exports: [STORE] })
      class StoreModule {}
      const app = await startNest(platform, {
        imports: [
          IdempotencyModule.forRootAsync({
            imports: [StoreModule],
            inject: [STORE],
            useFactory: (store: IdempotencyStore) => ({ store, ...quiet }),
          }),
        ],
        controllers: [PaymentsController],
        providers: [{ provide: APP_INTERCEPTOR, useExisting: IdempotencyInterceptor }],
      });
      try {
        const key = randomUUID();
        await send(app.url, '/file', `${platform}-async`, key);
        const replay = await send(app.url, '/file', `${platform}-async`, key);
        assert.equal(replay.headers.get('idempotent-replayed'), 'true');
      } finally {
        await app.close();
      }
      const engine = createIdempotency({ store: memoryStore(quiet), ...quiet });
      const shared = await startNest(platform, bound(engine));
      try {
        assert.equal((await send(shared.url, '/optional', `${platform}-shared`, undefined)).status, 500);
        assert.equal(executions.get(`${platform}-shared`), undefined);
        const key = randomUUID();
        await send(shared.url, '/pay', `${platform}-shared-pay`, key);
        assert.equal(
          (await send(shared.url, '/pay', `${platform}-shared-pay`, key)).headers.get('idempotent-replayed'),
          'true',
        );
      } finally {
        await shared.close();
        await engine.close();
      }
    });
  });
}
