import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { readNodeBody, sendEngineResponse } from '../../src/adapters/node-http.js';
import { handleNodeRequest } from '../../src/adapters/node-http-flow.js';
import type { HandlerContext } from '../../src/core/execution.js';
import { problemResponse } from '../../src/core/problem.js';
import { createIdempotency, type IdempotencyOptions, memoryStore } from '../../src/index.js';

/*
 * The node:http layer the Express, Koa and NestJS adapters share, on a plain node:http server:
 * every way a handler can write a ServerResponse is captured, committed before it is sent and
 * replayed byte for byte; a handler that fails in any of them ends the execution.
 */

type Handler = (req: IncomingMessage, res: ServerResponse, ctx: HandlerContext | undefined) => unknown;

async function serve(handler: Handler, overrides: Partial<IdempotencyOptions> = {}) {
  let executions = 0;
  const engine = createIdempotency({
    store: memoryStore({ onWarning() {} }),
    sweepIntervalMs: 0,
    onWarning() {},
    ...overrides,
  });
  const server = createServer(async (req, res) => {
    const body = await readNodeBody(req, engine.options.maxBodyBytes);
    if (body === undefined) return sendEngineResponse(res, problemResponse('payload-too-large'));
    await handleNodeRequest(engine, req, res, body, (ctx) => {
      executions++;
      return handler(req, res, ctx);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    executions: () => executions,
    post: (key: string, body = '{}') =>
      fetch(`${url}/pay`, {
        method: 'POST',
        headers: {
          'idempotency-key': key,
          authorization: 'Bearer alice',
          'content-type': 'application/json',
        },
        body,
        signal: AbortSignal.timeout(5_000),
      }),
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await engine.close();
    },
  };
}

async function twice(handler: Handler, overrides: Partial<IdempotencyOptions> = {}) {
  const served = await serve(handler, overrides);
  try {
    const key = randomUUID();
    const first = await served.post(key);
    const firstBody = Buffer.from(await first.arrayBuffer());
    const second = await served.post(key);
    const secondBody = Buffer.from(await second.arrayBuffer());
    return { first, firstBody, second, secondBody, executions: served.executions() };
  } finally {
    await served.close();
  }
}

describe('node:http layer: what a handler writes is captured, committed, replayed', () => {
  it('setHeader + write + end: replayed byte for byte, Set-Cookie only on the original', async () => {
    const r = await twice((_req, res) => {
      res.statusCode = 201;
      res.setHeader('content-type', 'application/json');
      res.setHeader('location', '/payments/1');
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      res.write('{"id":');
      res.end('1}');
    });
    assert.equal(r.executions, 1);
    assert.equal(r.first.status, 201);
    assert.equal(r.first.headers.get('idempotent-replayed'), 'false');
    assert.deepEqual(r.first.headers.getSetCookie(), ['a=1', 'b=2']);
    assert.equal(r.second.status, 201);
    assert.equal(r.second.headers.get('idempotent-replayed'), 'true');
    assert.equal(r.second.headers.get('location'), '/payments/1');
    assert.deepEqual(r.second.headers.getSetCookie(), []);
    assert.equal(r.secondBody.toString(), '{"id":1}');
    assert.deepEqual(r.secondBody, r.firstBody);
  });

  it('writeHead with a record, with [name, value] pairs and with a flat list', async () => {
    const forms: [string, Handler][] = [
      ['record', (_q, res) => res.writeHead(202, { 'content-type': 'text/plain', etag: '"r"' }).end('ok')],
      [
        'pairs',
        (_q, res) =>
          res
            .writeHead(202, [
              ['content-type', 'text/plain'],
              ['etag', '"r"'],
            ] as unknown as string[])
            .end('ok'),
      ],
      [
        'flat',
        (_q, res) => res.writeHead(202, 'Accepted', ['content-type', 'text/plain', 'etag', '"r"']).end('ok'),
      ],
    ];
    for (const [form, handler] of forms) {
      const r = await twice(handler);
      assert.equal(r.executions, 1, form);
      assert.equal(r.second.status, 202, form);
      assert.equal(r.second.headers.get('etag'), '"r"', form);
      assert.equal(r.second.headers.get('content-type'), 'text/plain', form);
      assert.equal(r.secondBody.toString(), 'ok', form);
    }
  });

  it('a piped stream is captured whole', async () => {
    const r = await twice(async (_req, res) => {
      res.setHeader('content-type', 'application/octet-stream');
      await pipeline(Readable.from([Buffer.from([0, 1]), Buffer.from([2, 255])]), res);
    });
    assert.equal(r.executions, 1);
    assert.deepEqual([...r.secondBody], [0, 1, 2, 255]);
    assert.equal(r.second.headers.get('idempotent-replayed'), 'true');
  });

  it('a stream that fails midway ends the execution: the retry runs, nothing hangs', async () => {
    let calls = 0;
    const served = await serve(async (_req, res) => {
      if (++calls > 1) return res.writeHead(201).end('second');
      let sent = false;
      const failing = new Readable({
        read() {
          if (sent) return;
          sent = true;
          this.push('partial');
          setImmediate(() => this.destroy(new Error('disk read failed')));
        },
      });
      await pipeline(failing, res).catch(() => {});
    });
    try {
      const key = randomUUID();
      await served
        .post(key)
        .then((r) => r.arrayBuffer())
        .catch(() => undefined);
      const retry = await served.post(key);
      assert.equal(retry.status, 201);
      assert.equal(await retry.text(), 'second');
      assert.equal(served.executions(), 2);
    } finally {
      await served.close();
    }
  });

  it('a .pipe() cut short by a client that went away ends the execution: the retry runs, nothing hangs', async () => {
    let calls = 0;
    const served = await serve((_req, res) => {
      res.statusCode = 201;
      if (++calls > 1) return res.end('second');
      // pipe() unpipes when the response closes and never ends it (pipeline() would keep writing).
      Readable.from(
        (async function* slowly() {
          for (let i = 0; i < 6; i++) {
            await new Promise((resolve) => setTimeout(resolve, 50));
            yield 'chunk';
          }
        })(),
      ).pipe(res);
    });
    try {
      const key = randomUUID();
      const gone = fetch(`${served.url}/pay`, {
        method: 'POST',
        headers: { 'idempotency-key': key, authorization: 'Bearer alice' },
        body: '{}',
        signal: AbortSignal.timeout(80),
      }).then((r) => r.arrayBuffer());
      await assert.rejects(gone);
      let retry = await served.post(key);
      for (let i = 0; i < 50 && retry.status === 409; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        retry = await served.post(key);
      }
      assert.equal(retry.status, 201);
      assert.equal(await retry.text(), 'second');
      assert.equal(served.executions(), 2);
    } finally {
      await served.close();
    }
  });

  it('a handler that throws before answering gets the sanitised 500 and frees the key', async () => {
    let calls = 0;
    const served = await serve(async (_req, res) => {
      if (++calls === 1) throw new Error('db password hunter2');
      res.writeHead(201).end('ran again');
    });
    try {
      const key = randomUUID();
      const first = await served.post(key);
      assert.equal(first.status, 500);
      assert.doesNotMatch(await first.text(), /hunter2/);
      const retry = await served.post(key);
      assert.equal(retry.status, 201);
      assert.equal(served.executions(), 2);
    } finally {
      await served.close();
    }
  });

  it('the problem answering a throw has its own reason phrase, not the one the handler set (Koa sets one)', async () => {
    const served = await serve((_req, res) => {
      res.statusCode = 201;
      res.statusMessage = 'Created';
      throw new Error('boom');
    });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        const req = request(
          `${served.url}/pay`,
          { method: 'POST', headers: { authorization: 'Bearer alice', 'idempotency-key': randomUUID() } },
          (res) => {
            res.resume();
            resolve(`${res.statusCode} ${res.statusMessage}`);
          },
        );
        req.once('error', reject);
        req.end('{}');
      });
      assert.equal(line, '500 Internal Server Error');
    } finally {
      await served.close();
    }
  });

  it('a body past maxStoredBytes streams through; replays answer result-unavailable', async () => {
    const big = 'x'.repeat(64 * 1024);
    const r = await twice(
      (_req, res) => {
        res.statusCode = 201;
        for (let i = 0; i < 4; i++) res.write(big);
        res.end();
      },
      { maxStoredBytes: 100_000 },
    );
    assert.equal(r.executions, 1);
    assert.equal(r.first.status, 201);
    assert.equal(r.firstBody.byteLength, 4 * big.length);
    assert.equal(r.first.headers.get('idempotent-replayed'), 'false');
    assert.equal(r.second.status, 409);
    assert.match(JSON.parse(r.secondBody.toString()).type, /result-unavailable/);
  });

  it('without the layer the same handler runs twice (negative control)', async () => {
    let executions = 0;
    const server = createServer((_req, res) => {
      executions++;
      res.writeHead(201).end('charged');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/pay`;
    try {
      const init = {
        method: 'POST',
        headers: { 'idempotency-key': 'k', authorization: 'Bearer a' },
        body: '{}',
      };
      await (await fetch(url, init)).text();
      await (await fetch(url, init)).text();
      assert.equal(executions, 2);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('a body over maxBodyBytes is refused with 413 before the handler runs', async () => {
    const served = await serve((_req, res) => res.end('ran'), { maxBodyBytes: 10 });
    try {
      const response = await served.post(randomUUID(), JSON.stringify({ amount: 'x'.repeat(100) }));
      assert.equal(response.status, 413);
      assert.equal(served.executions(), 0);
    } finally {
      await served.close();
    }
  });
});
