import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import idempotency, { type FastifyIdempotencyOptions } from '../../src/adapters/fastify.js';
import { createIdempotency, type IdempotencyOptions, memoryStore } from '../../src/index.js';
import { countingStore } from '../../src/testing/index.js';

/*
 * The Fastify plugin on real Fastify 5 servers over loopback sockets, with Fastify's own JSON
 * parser in front: the context on the request, every way a reply is made, failures at every
 * step, encapsulation and per-route config. The HTTP contract runs in test/contract/.
 */

interface Served {
  url: string;
  storeCalls(): number;
  warnings: string[];
  /** Executions per route name, counted by the handlers. */
  runs(name: string): number;
  post(
    path: string,
    o?: { key?: string | null; body?: string; auth?: string; signal?: AbortSignal },
  ): Promise<Response>;
  close(): Promise<void>;
}

type Routes = (app: FastifyInstance, ran: (name: string) => void) => void;

/** A Fastify app with the plugin (unless `options` is false) and `routes`, on 127.0.0.1. */
async function serve(
  routes: Routes,
  options: Partial<IdempotencyOptions> | false = {},
  registerWith?: (app: FastifyInstance, plugin: FastifyIdempotencyOptions) => Promise<void>,
): Promise<Served> {
  const spy = countingStore(memoryStore({ onWarning() {} }));
  const warnings: string[] = [];
  const counts = new Map<string, number>();
  const ran = (name: string) => counts.set(name, (counts.get(name) ?? 0) + 1);
  const app = Fastify({ logger: false, forceCloseConnections: true });
  if (options !== false) {
    const plugin = {
      store: spy.store,
      sweepIntervalMs: 0,
      onWarning: (m: string) => warnings.push(m),
      ...options,
    };
    if (registerWith) await registerWith(app, plugin);
    else await app.register(idempotency, plugin);
  }
  routes(app, ran);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  return {
    url,
    warnings,
    storeCalls: spy.calls,
    runs: (name) => counts.get(name) ?? 0,
    post(path, o = {}) {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (o.key !== null) headers['idempotency-key'] = o.key ?? randomUUID();
      headers.authorization = o.auth ?? 'Bearer alice';
      return fetch(`${url}${path}`, {
        method: 'POST',
        headers,
        body: o.body ?? '{}',
        signal: o.signal ?? AbortSignal.timeout(5_000),
      });
    },
    close: () => app.close(),
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves once `check` holds, polling every 5 ms; bounded to 5 s (then resolves anyway). */
async function whenTrue(check: () => boolean): Promise<void> {
  const until = Date.now() + 5_000;
  while (!check() && Date.now() < until) await sleep(5);
}

/** Retries with one key until the answer is not 409 in-progress; bounded to 5 s. */
async function retryUntilSettled(s: Served, path: string, key: string): Promise<Response> {
  const until = Date.now() + 5_000;
  for (;;) {
    const response = await s.post(path, { key });
    const inProgress = response.status === 409 && (await response.clone().text()).includes('in-progress');
    if (!inProgress || Date.now() > until) return response;
    await sleep(100);
  }
}

describe('idemkit/fastify: the handler and its context', () => {
  it('a retried POST runs once; the handler gets the parsed body and request.idempotency', async () => {
    const seen: { downstream: string; fencing: number; signal: boolean; amount: unknown }[] = [];
    const s = await serve((app, ran) => {
      app.post('/pay', async (request, reply) => {
        ran('pay');
        const ctx = request.idempotency;
        assert.ok(ctx);
        seen.push({
          downstream: ctx.downstreamKey(),
          fencing: ctx.fencingToken,
          signal: ctx.signal instanceof AbortSignal,
          amount: (request.body as { amount: unknown }).amount,
        });
        return reply.code(201).send({ charged: (request.body as { amount: number }).amount });
      });
    });
    try {
      const key = randomUUID();
      const first = await s.post('/pay', { key, body: '{"amount":1000}' });
      const firstBody = await first.text();
      assert.equal(first.status, 201);
      assert.equal(first.headers.get('idempotent-replayed'), 'false');
      for (let i = 0; i < 3; i++) {
        const retry = await s.post('/pay', { key, body: '{ "amount": 1000 }' });
        assert.equal(retry.status, 201);
        assert.equal(retry.headers.get('idempotent-replayed'), 'true');
        assert.equal(await retry.text(), firstBody);
      }
      assert.equal(s.runs('pay'), 1);
      assert.deepEqual(seen, [
        { downstream: seen[0]?.downstream, fencing: seen[0]?.fencing, signal: true, amount: 1000 },
      ]);
      assert.match(String(seen[0]?.downstream), /\S{16,}/);
    } finally {
      await s.close();
    }
  });

  it('negative control: the same app without the plugin runs a retried POST twice', async () => {
    const routes: Routes = (app, ran) => {
      app.post('/pay', async () => {
        ran('pay');
        return { ok: true };
      });
    };
    const bare = await serve(routes, false);
    const covered = await serve(routes);
    try {
      const key = randomUUID();
      for (const s of [bare, covered]) {
        await s.post('/pay', { key });
        await s.post('/pay', { key });
      }
      assert.equal(bare.runs('pay'), 2, 'without idemkit the retry executes again');
      assert.equal(covered.runs('pay'), 1);
    } finally {
      await bare.close();
      await covered.close();
    }
  });

  it('downstreamKey() is the same in a released attempt and its retry', async () => {
    const keys: string[] = [];
    const s = await serve((app) => {
      app.post('/flaky', async (request, reply) => {
        keys.push(request.idempotency?.downstreamKey() ?? '');
        return reply.code(keys.length === 1 ? 503 : 201).send({ attempt: keys.length });
      });
    });
    try {
      const key = randomUUID();
      assert.equal((await s.post('/flaky', { key })).status, 503);
      assert.equal((await s.post('/flaky', { key })).status, 201);
      assert.equal(keys.length, 2);
      assert.equal(keys[0], keys[1]);
    } finally {
      await s.close();
    }
  });

  it('the fingerprint is over the raw bytes, not the parsed body: integers past 2^53 stay distinct', async () => {
    const s = await serve((app, ran) => {
      app.post('/pay', async () => {
        ran('pay');
        return { ok: true };
      });
    });
    try {
      const key = randomUUID();
      assert.equal((await s.post('/pay', { key, body: '{"amount":12345678901234567890}' })).status, 200);
      const other = await s.post('/pay', { key, body: '{"amount":12345678901234567891}' });
      assert.equal(other.status, 422);
      assert.equal(((await other.json()) as { type: string }).type, 'urn:idemkit:problem:key-reused');
      assert.equal(s.runs('pay'), 1);
    } finally {
      await s.close();
    }
  });

  it('principal(native) receives the Fastify request, after an auth hook registered before the plugin', async () => {
    const s = await serve(
      (app, ran) => {
        app.post('/pay', async (request) => {
          ran(String(request.headers['x-user']));
          return { user: request.headers['x-user'] };
        });
      },
      {},
      async (app, plugin) => {
        app.decorateRequest('user', '');
        app.addHook('preHandler', async (request) => {
          (request as unknown as { user: string }).user = String(request.headers['x-user'] ?? '');
        });
        await app.register(idempotency, {
          ...(plugin as IdempotencyOptions),
          principal: (request) => (request as unknown as { user: string }).user,
        });
      },
    );
    try {
      const key = randomUUID();
      for (const user of ['ann', 'bob', 'ann']) {
        await fetch(`${s.url}/pay`, {
          method: 'POST',
          headers: { 'idempotency-key': key, 'x-user': user, 'content-type': 'application/json' },
          body: '{}',
        });
      }
      assert.equal(s.runs('ann'), 1);
      assert.equal(s.runs('bob'), 1);
    } finally {
      await s.close();
    }
  });

  it('a body that fails route validation claims nothing; the corrected body runs with the same key', async () => {
    const s = await serve((app, ran) => {
      const schema = {
        body: { type: 'object', required: ['amount'], properties: { amount: { type: 'integer' } } },
      };
      app.post('/pay', { schema }, async () => {
        ran('pay');
        return { ok: true };
      });
    });
    try {
      const key = randomUUID();
      assert.equal((await s.post('/pay', { key, body: '{"amount":"ten"}' })).status, 400);
      assert.equal(s.storeCalls(), 0);
      const corrected = await s.post('/pay', { key, body: '{"amount":10}' });
      assert.equal(corrected.status, 200);
      assert.equal(corrected.headers.get('idempotent-replayed'), 'false');
      assert.equal(s.runs('pay'), 1);
    } finally {
      await s.close();
    }
  });

  it('a POST without a body runs once and replays', async () => {
    const s = await serve((app, ran) => {
      app.post('/ping', async (request) => {
        ran('ping');
        return { body: request.body ?? null };
      });
    });
    try {
      const key = randomUUID();
      const send = () =>
        fetch(`${s.url}/ping`, {
          method: 'POST',
          headers: { 'idempotency-key': key, authorization: 'Bearer alice' },
          signal: AbortSignal.timeout(5_000),
        });
      const first = await send();
      assert.equal(first.status, 200);
      assert.deepEqual(await first.json(), { body: null });
      assert.equal((await send()).headers.get('idempotent-replayed'), 'true');
      assert.equal(s.runs('ping'), 1);
    } finally {
      await s.close();
    }
  });

  it('a body over maxBodyBytes gets 413 payload-too-large before any store call', async () => {
    const s = await serve(
      (app, ran) => {
        app.post('/pay', async () => {
          ran('pay');
          return { ok: true };
        });
      },
      { maxBodyBytes: 100 },
    );
    try {
      const response = await s.post('/pay', { body: JSON.stringify({ note: 'x'.repeat(500) }) });
      assert.equal(response.status, 413);
      assert.equal(
        ((await response.json()) as { type: string }).type,
        'urn:idemkit:problem:payload-too-large',
      );
      assert.equal(s.storeCalls(), 0);
      assert.equal(s.runs('pay'), 0);
      assert.equal((await s.post('/pay', { body: '{"small":true}' })).status, 200);
    } finally {
      await s.close();
    }
  });
});

describe('idemkit/fastify: what a handler throws', () => {
  it('a thrown error releases the key with a sanitised 500; the retry runs again', async () => {
    const s = await serve((app, ran) => {
      app.post('/boom', async () => {
        ran('boom');
        throw new Error('db password hunter2 at /srv/app/charge.ts:12');
      });
    });
    try {
      const key = randomUUID();
      const failed = await s.post('/boom', { key });
      const text = await failed.text();
      assert.equal(failed.status, 500);
      assert.equal(failed.headers.get('content-type'), 'application/problem+json');
      assert.ok(!/hunter2|\/srv\/|charge\.ts/.test(text), text);
      assert.equal((await s.post('/boom', { key })).status, 500);
      assert.equal(s.runs('boom'), 2, 'the key was released');
    } finally {
      await s.close();
    }
  });

  it('an error the app answers with a 4xx is its verdict: 422 is stored and replayed, 409 released', async () => {
    const s = await serve((app, ran) => {
      app.post('/refuse/:code', async (request) => {
        const code = Number((request.params as { code: string }).code);
        ran(String(code));
        throw Object.assign(new Error(`refused with ${code}`), { statusCode: code });
      });
    });
    try {
      const key = randomUUID();
      const first = await s.post('/refuse/422', { key });
      assert.equal(first.status, 422);
      assert.match(await first.text(), /refused with 422/);
      const replay = await s.post('/refuse/422', { key });
      assert.equal(replay.status, 422);
      assert.equal(replay.headers.get('idempotent-replayed'), 'true');
      assert.equal(s.runs('422'), 1);
      const other = randomUUID();
      await s.post('/refuse/409', { key: other });
      await s.post('/refuse/409', { key: other });
      assert.equal(s.runs('409'), 2, '409 is momentary: released');
    } finally {
      await s.close();
    }
  });

  it("the app's setErrorHandler: its 4xx rendering is kept, its 5xx body is replaced by the problem", async () => {
    const s = await serve((app, ran) => {
      app.setErrorHandler((error, _request, reply) => {
        const conflict = (error as Error).message.startsWith('conflict');
        return reply
          .code(conflict ? 409 : 500)
          .header('x-error-handler', 'yes')
          .send({ handled: (error as Error).message });
      });
      app.post('/fail/:kind', async (request) => {
        const kind = (request.params as { kind: string }).kind;
        ran(kind);
        throw new Error(kind === 'conflict' ? 'conflict: seat taken' : 'secret /srv/db');
      });
    });
    try {
      const conflict = await s.post('/fail/conflict');
      assert.equal(conflict.status, 409);
      assert.equal(conflict.headers.get('x-error-handler'), 'yes');
      assert.deepEqual(await conflict.json(), { handled: 'conflict: seat taken' });
      const crash = await s.post('/fail/crash');
      assert.equal(crash.status, 500);
      assert.equal(crash.headers.get('x-error-handler'), null);
      assert.ok(!(await crash.text()).includes('/srv/db'));
    } finally {
      await s.close();
    }
  });
});

describe('idemkit/fastify: every way a reply is made is captured and replayed byte for byte', () => {
  const body = 'é'.repeat(300);
  const replies: [string, (reply: import('fastify').FastifyReply) => unknown][] = [
    ['a string', (reply) => reply.type('text/plain; charset=utf-8').send(body)],
    ['a Buffer', (reply) => reply.type('application/octet-stream').send(Buffer.from(body))],
    ['an object', (reply) => reply.send({ body })],
    ['a returned object', () => ({ body })],
    [
      'a Node stream',
      (reply) => reply.type('text/plain').send(Readable.from([body.slice(0, 100), body.slice(100)])),
    ],
    [
      'a web ReadableStream',
      (reply) => reply.type('text/plain').send(new Blob([body]).stream() as unknown as ReadableStream),
    ],
    [
      'a fetch Response',
      (reply) => reply.send(new Response(body, { status: 202, headers: { 'content-type': 'text/x-a' } })),
    ],
    ['an empty 204', (reply) => reply.code(204).send()],
  ];
  for (const [name, send] of replies) {
    it(name, async () => {
      const s = await serve((app, ran) => {
        app.post('/r', async (_request, reply) => {
          ran('r');
          return send(reply);
        });
      });
      try {
        const key = randomUUID();
        const first = await s.post('/r', { key });
        const firstBytes = Buffer.from(await first.arrayBuffer());
        const replay = await s.post('/r', { key });
        assert.equal(replay.headers.get('idempotent-replayed'), 'true');
        assert.equal(replay.status, first.status);
        assert.deepEqual(Buffer.from(await replay.arrayBuffer()), firstBytes);
        assert.equal(replay.headers.get('content-type'), first.headers.get('content-type'));
        assert.equal(s.runs('r'), 1);
      } finally {
        await s.close();
      }
    });
  }

  it('an async handler that calls reply.send() without returning reply still answers whole', async () => {
    const s = await serve((app, ran) => {
      app.post('/r', async (_request, reply) => {
        ran('r');
        reply.code(201).send({ sent: 'without return' });
      });
    });
    try {
      const key = randomUUID();
      const first = await s.post('/r', { key });
      assert.equal(first.status, 201);
      assert.equal(first.headers.get('idempotent-replayed'), 'false');
      assert.deepEqual(await first.json(), { sent: 'without return' });
      const replay = await s.post('/r', { key });
      assert.deepEqual(await replay.json(), { sent: 'without return' });
      assert.equal(s.runs('r'), 1);
    } finally {
      await s.close();
    }
  });

  it('repeated header lines: both cookies reach the first caller, both Link lines are replayed', async () => {
    const s = await serve((app) => {
      app.post('/r', async (_request, reply) => {
        reply.header('set-cookie', ['a=1; HttpOnly', 'b=2; HttpOnly']);
        reply.header('link', ['</a>; rel="a"', '</b>; rel="b"']);
        return reply.code(201).send({ ok: true });
      });
    });
    try {
      const key = randomUUID();
      const first = await s.post('/r', { key });
      assert.deepEqual(first.headers.getSetCookie(), ['a=1; HttpOnly', 'b=2; HttpOnly']);
      const replay = await s.post('/r', { key });
      assert.equal(replay.headers.get('link'), '</a>; rel="a", </b>; rel="b"');
      assert.deepEqual(replay.headers.getSetCookie(), []);
    } finally {
      await s.close();
    }
  });

  it('a stream past maxStoredBytes reaches the first caller whole; replays get 409 result-unavailable', async () => {
    const s = await serve(
      (app, ran) => {
        app.post('/download', async (_request, reply) => {
          ran('download');
          const chunks = Array.from({ length: 50 }, (_, i) => Buffer.alloc(1_000, 97 + (i % 26)));
          return reply.type('application/octet-stream').send(Readable.from(chunks));
        });
      },
      { maxStoredBytes: 4_000 },
    );
    try {
      const key = randomUUID();
      const first = await s.post('/download', { key });
      assert.equal(first.status, 200);
      assert.equal(first.headers.get('idempotent-replayed'), 'false');
      assert.equal((await first.arrayBuffer()).byteLength, 50_000);
      const replay = await s.post('/download', { key });
      assert.equal(replay.status, 409);
      assert.equal(
        ((await replay.json()) as { type: string }).type,
        'urn:idemkit:problem:result-unavailable',
      );
      assert.equal(s.runs('download'), 1);
    } finally {
      await s.close();
    }
  });
});

describe('idemkit/fastify: an answer that fails midway never leaves the key locked', () => {
  it('a stream that fails before it ends: sanitised 500, the key is released', async () => {
    const s = await serve((app, ran) => {
      app.post('/export', async (_request, reply) => {
        ran('export');
        const stream = new Readable({ read() {} });
        stream.push('partial rows');
        setTimeout(() => stream.destroy(new Error('disk /srv/data gone')), 20);
        return reply.type('text/csv').send(stream);
      });
    });
    try {
      const key = randomUUID();
      const failed = await s.post('/export', { key });
      assert.equal(failed.status, 500);
      assert.ok(!(await failed.text()).includes('/srv/data'));
      assert.equal((await retryUntilSettled(s, '/export', key)).status, 500);
      assert.equal(s.runs('export'), 2);
    } finally {
      await s.close();
    }
  });

  it('a stream that fails after its head was committed: the client sees a broken body, a retry an answer', async () => {
    const s = await serve(
      (app, ran) => {
        app.post('/export', async (_request, reply) => {
          ran('export');
          const stream = new Readable({ read() {} });
          stream.push(Buffer.alloc(3_000, 120));
          setTimeout(() => stream.destroy(new Error('disk gone')), 50);
          return reply.type('text/csv').send(stream);
        });
      },
      { maxStoredBytes: 1_000 },
    );
    try {
      const key = randomUUID();
      await assert.rejects(async () => {
        const broken = await s.post('/export', { key });
        await broken.arrayBuffer();
      });
      const retry = await retryUntilSettled(s, '/export', key);
      assert.equal(retry.status, 409);
      assert.equal(((await retry.json()) as { type: string }).type, 'urn:idemkit:problem:result-unavailable');
      assert.equal(s.runs('export'), 1);
    } finally {
      await s.close();
    }
  });

  it('the client leaves while the handler runs: its result is still stored, the retry replays it', async () => {
    const s = await serve((app, ran) => {
      app.post('/slow', async (_request, reply) => {
        ran('slow');
        await sleep(300);
        return reply.code(201).send({ done: true });
      });
      app.post('/slow-empty', async () => {
        ran('slow-empty');
        await sleep(300);
        // An async handler that answers nothing: Fastify sends an empty 200 to a live client.
      });
    });
    try {
      for (const path of ['/slow', '/slow-empty']) {
        const key = randomUUID();
        const gone = new AbortController();
        const attempt = s.post(path, { key, signal: gone.signal });
        await sleep(100);
        gone.abort();
        await assert.rejects(attempt);
        const retry = await retryUntilSettled(s, path, key);
        assert.equal(retry.headers.get('idempotent-replayed'), 'true', path);
        assert.equal(retry.status, path === '/slow' ? 201 : 200);
        assert.equal(s.runs(path.slice(1)), 1, path);
      }
    } finally {
      await s.close();
    }
  });

  it('a hijacked reply is answered around Fastify: the key is held as uncertain, with a warning', async () => {
    const s = await serve((app, ran) => {
      app.post('/raw', async (_request, reply) => {
        ran('raw');
        reply.hijack();
        reply.raw.writeHead(200, { 'content-type': 'text/plain' });
        reply.raw.end('written by hand');
      });
    });
    try {
      const key = randomUUID();
      const first = await s.post('/raw', { key });
      assert.equal(await first.text(), 'written by hand');
      const retry = await retryUntilSettled(s, '/raw', key);
      assert.equal(retry.status, 409);
      assert.equal(((await retry.json()) as { type: string }).type, 'urn:idemkit:problem:outcome-uncertain');
      assert.equal(s.runs('raw'), 1);
      assert.equal(s.warnings.filter((w) => w.includes('hijack')).length, 1);
    } finally {
      await s.close();
    }
  });
});

describe('idemkit/fastify: encapsulation and per-route config', () => {
  const pay = (name: string) => async () => ({ route: name });

  it('registered at the root it covers routes declared right after it, without await', async () => {
    const app = Fastify({ logger: false });
    app.register(idempotency, { store: memoryStore({ onWarning() {} }), sweepIntervalMs: 0 });
    let runs = 0;
    app.post('/pay', async () => ({ run: ++runs }));
    // Declared before the plugin loaded (onRoute never saw it), and sends without `return reply`.
    app.post('/sent', async (_request, reply) => {
      runs++;
      reply.code(201).send({ sent: true });
    });
    const key = randomUUID();
    const inject = () =>
      app.inject({
        method: 'POST',
        url: '/pay',
        headers: { 'idempotency-key': key, authorization: 'Bearer a' },
        payload: {},
      });
    try {
      assert.equal((await inject()).headers['idempotent-replayed'], 'false');
      assert.equal((await inject()).headers['idempotent-replayed'], 'true');
      assert.equal(runs, 1);
      const sent = () =>
        app.inject({
          method: 'POST',
          url: '/sent',
          headers: { 'idempotency-key': key, authorization: 'Bearer a' },
          payload: {},
        });
      const first = await sent();
      assert.equal(first.statusCode, 201);
      assert.equal(first.headers['idempotent-replayed'], 'false');
      assert.equal(first.body, '{"sent":true}');
      assert.equal((await sent()).headers['idempotent-replayed'], 'true');
      assert.equal(runs, 2);
    } finally {
      await app.close();
    }
  });

  it("registered in a child plugin it covers that child's routes only", async () => {
    const s = await serve(
      (app, ran) => {
        app.register(async (child) => {
          child.post('/outside', async () => {
            ran('outside');
            return { ok: true };
          });
        });
      },
      {},
      async (app, plugin) => {
        await app.register(async (child) => {
          await child.register(idempotency, plugin);
          child.post('/inside', async () => ({ ok: true }));
        });
      },
    );
    try {
      const key = randomUUID();
      await s.post('/inside', { key });
      assert.equal((await s.post('/inside', { key })).headers.get('idempotent-replayed'), 'true');
      const outside = randomUUID();
      await s.post('/outside', { key: outside });
      const again = await s.post('/outside', { key: outside });
      assert.equal(again.headers.get('idempotent-replayed'), null);
      assert.equal(s.runs('outside'), 2, 'a sibling context is not covered');
    } finally {
      await s.close();
    }
  });

  it('config.idempotency: false leaves a route out; { required: false } lets it run without a key', async () => {
    const s = await serve((app, ran) => {
      app.post('/off', { config: { idempotency: false } }, async () => {
        ran('off');
        return pay('off')();
      });
      app.post('/optional', { config: { idempotency: { required: false } } }, pay('optional'));
      app.post('/strict', pay('strict'));
    });
    try {
      const key = randomUUID();
      await s.post('/off', { key });
      const off = await s.post('/off', { key });
      assert.equal(off.headers.get('idempotent-replayed'), null);
      assert.equal(s.runs('off'), 2);
      assert.equal((await s.post('/optional', { key: null })).status, 200);
      assert.equal((await s.post('/strict', { key: null })).status, 400);
      assert.equal(s.storeCalls(), 0);
    } finally {
      await s.close();
    }
  });

  it('per-route replayHeaders and wait apply to that route only', async () => {
    const s = await serve((app, ran) => {
      const handler = (name: string) => async (_request: unknown, reply: import('fastify').FastifyReply) => {
        ran(name);
        await sleep(300);
        return reply.header('x-trace', `t-${name}`).send({ name });
      };
      app.post(
        '/held',
        { config: { idempotency: { wait: 3_000, replayHeaders: ['x-trace'] } } },
        handler('held'),
      );
      app.post('/plain', handler('plain'));
    });
    try {
      const key = randomUUID();
      const [first, duplicate] = await Promise.all([
        s.post('/held', { key }),
        // The duplicate once the first runs (a fixed delay could let it overtake a slow first).
        whenTrue(() => s.runs('held') === 1).then(() => s.post('/held', { key })),
      ]);
      assert.equal(first.headers.get('idempotent-replayed'), 'false');
      assert.equal(duplicate.status, 200, 'the duplicate was held until the first finished');
      assert.equal(duplicate.headers.get('idempotent-replayed'), 'true');
      assert.equal(duplicate.headers.get('x-trace'), 't-held');
      assert.equal(s.runs('held'), 1);
      const other = randomUUID();
      const [, conflict] = await Promise.all([
        s.post('/plain', { key: other }),
        whenTrue(() => s.runs('plain') === 1).then(() => s.post('/plain', { key: other })),
      ]);
      assert.equal(conflict.status, 409);
      const replay = await s.post('/plain', { key: other });
      assert.equal(replay.headers.get('x-trace'), null);
    } finally {
      await s.close();
    }
  });

  it('refuses at startup: an unknown per-route option, per-route options on a shared engine, a second registration', async () => {
    const store = memoryStore({ onWarning() {} });
    const unknown = Fastify({ logger: false });
    await unknown.register(idempotency, { store, sweepIntervalMs: 0 });
    assert.throws(
      () => unknown.post('/x', { config: { idempotency: { requried: true } as never } }, pay('x')),
      /config\.idempotency\.requried is not a per-route option/,
    );
    await unknown.close();

    const engine = createIdempotency({ store, sweepIntervalMs: 0 });
    const shared = Fastify({ logger: false });
    await shared.register(idempotency, engine);
    assert.throws(
      () => shared.post('/x', { config: { idempotency: { required: false } } }, pay('x')),
      /shared engine/,
    );
    await shared.close();

    const twice = Fastify({ logger: false });
    twice.register(idempotency, { store, sweepIntervalMs: 0 });
    twice.register(async (child) => {
      await child.register(idempotency, { store, sweepIntervalMs: 0 });
    });
    await assert.rejects(async () => {
      await twice.ready();
    }, /already registered/);
    await twice.close().catch(() => {});
    await engine.close();
  });

  it('two apps sharing one engine share its records', async () => {
    const engine = createIdempotency({ store: memoryStore({ onWarning() {} }), sweepIntervalMs: 0 });
    let runs = 0;
    const apps = [Fastify({ logger: false }), Fastify({ logger: false })];
    for (const app of apps) {
      await app.register(idempotency, engine);
      app.post('/pay', async () => ({ run: ++runs }));
    }
    try {
      const key = randomUUID();
      const headers = { 'idempotency-key': key, authorization: 'Bearer a' };
      const first = await apps[0]?.inject({ method: 'POST', url: '/pay', headers, payload: {} });
      const second = await apps[1]?.inject({ method: 'POST', url: '/pay', headers, payload: {} });
      assert.equal(second?.headers['idempotent-replayed'], 'true');
      assert.equal(second?.body, first?.body);
      assert.equal(runs, 1);
    } finally {
      for (const app of apps) await app.close();
      await engine.close();
    }
  });
});
