import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { request } from 'undici';
import { type FaultKind, startFaultProxy } from '../../src/cli/demo/fault-proxy.js';
import { createRetryClient, parseRetryAfter } from '../../src/cli/demo/retry-client.js';

/** A loopback server whose n-th request (from 1) is answered by `answer(n, req, res)`. */
async function serve(answer: (n: number, req: IncomingMessage, res: ServerResponse, body: string) => void) {
  const seen: { key: string | undefined; body: string }[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      seen.push({ key: req.headers['idempotency-key'] as string | undefined, body });
      answer(seen.length, req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

const created = (res: ServerResponse) =>
  res.writeHead(201, { 'content-type': 'application/json' }).end('{"ok":true}');
const headers = { 'content-type': 'application/json', 'idempotency-key': 'k-1' };

describe('demo retry client', () => {
  const client = createRetryClient({ timeoutMs: 300, baseDelayMs: 1, maxDelayMs: 5 });
  after(() => client.close());

  it('retries dropped connections with the same key and body until it succeeds', async () => {
    const server = await serve((n, req, res) => (n < 3 ? req.socket.destroy() : created(res)));

    const result = await client.post(server.url, headers, '{"amount":1}');

    assert.deepEqual(
      { ok: result.ok, status: result.status, attempts: result.attempts },
      { ok: true, status: 201, attempts: 3 },
    );
    assert.deepEqual(new Set(server.seen.map((s) => `${s.key} ${s.body}`)), new Set(['k-1 {"amount":1}']));
  });

  it('gives an attempt up at its timeout and retries', async () => {
    const server = await serve((n, _req, res) => (n === 1 ? undefined : created(res)));

    const result = await client.post(server.url, headers, '{}');

    assert.equal(result.attempts, 2);
    assert.ok(result.totalMs >= 290, `the first attempt waited ${result.totalMs} ms`);
  });

  it('never retries 400 or 422: the request itself is wrong', async () => {
    for (const status of [400, 422]) {
      const server = await serve((_n, _req, res) => res.writeHead(status).end());

      const result = await client.post(server.url, headers, '{}');

      assert.deepEqual(
        { ok: result.ok, status: result.status, attempts: result.attempts },
        { ok: false, status, attempts: 1 },
      );
    }
  });

  it('honours Retry-After on 409 and 503, and reports replays', async () => {
    const server = await serve((n, _req, res) => {
      if (n === 1) res.writeHead(409, { 'retry-after': '1' }).end();
      else res.writeHead(201, { 'idempotent-replayed': 'true' }).end();
    });

    const result = await client.post(server.url, headers, '{}');

    assert.ok(result.totalMs >= 990, `waited ${result.totalMs} ms for Retry-After: 1`);
    assert.equal(result.replayed, true);
  });

  it('stops after maxAttempts', async () => {
    const impatient = createRetryClient({ maxAttempts: 3, baseDelayMs: 1 });
    const server = await serve((_n, _req, res) => res.writeHead(502).end());

    const result = await impatient.post(server.url, headers, '{}');
    await impatient.close();

    assert.deepEqual(
      { ok: result.ok, status: result.status, attempts: result.attempts },
      { ok: false, status: 502, attempts: 3 },
    );
  });

  it('parses Retry-After as seconds or an HTTP date', () => {
    assert.equal(parseRetryAfter('2'), 2_000);
    assert.equal(parseRetryAfter(undefined), 0);
    assert.equal(parseRetryAfter('soon'), 0);
    const inFive = parseRetryAfter(new Date(Date.now() + 5_000).toUTCString());
    assert.ok(inFive > 3_000 && inFive <= 5_000, String(inFive));
  });
});

describe('demo fault proxy', () => {
  const send = (url: string, timeoutMs = 1_000) =>
    request(`${url}/charges`, {
      method: 'POST',
      body: '{"a":1}',
      signal: AbortSignal.timeout(timeoutMs),
    }).then(async (r) => ({
      status: r.statusCode,
      body: await r.body.text(),
      type: r.headers['content-type'],
    }));

  it('relays requests and responses untouched at rate 0', async () => {
    const server = await serve((_n, _req, res, body) =>
      res.writeHead(201, { 'content-type': 'text/x-echo' }).end(body),
    );
    const proxy = await startFaultProxy({ target: server.url, faultRate: 0 });

    const response = await send(proxy.url);
    await proxy.close();

    assert.deepEqual(response, { status: 201, body: '{"a":1}', type: 'text/x-echo' });
    assert.equal(proxy.forwarded, 1);
  });

  for (const kind of ['drop', 'truncate', 'hang'] as FaultKind[]) {
    it(`${kind}: the server did the work, the client gets no usable answer`, async () => {
      const server = await serve((_n, _req, res) => created(res));
      const proxy = await startFaultProxy({ target: server.url, faultRate: 1, kinds: [kind] });

      await assert.rejects(send(proxy.url, 300));
      await proxy.close();

      assert.equal(server.seen.length, 1); // charged
      assert.deepEqual(proxy.faults, { drop: 0, truncate: 0, hang: 0, [kind]: 1 });
    });
  }
});
