import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { request } from 'undici';
import { type FaultKind, startFaultProxy } from '../../src/cli/demo/fault-proxy.js';

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

// The demo's retrying customers use idemkit/client: its tests are test/*/client-*.test.ts.

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
