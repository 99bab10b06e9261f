import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { describe, it } from 'node:test';
import { createUpstream } from '../../src/gateway/proxy.js';
import { startGateway } from '../../src/gateway/server.js';
import { GATEWAY_DEFAULTS, type GatewayConfig, type GatewayLogger } from '../../src/gateway/types.js';
import { UpstreamError } from '../../src/gateway/upstream-outcome.js';
import { memoryStore } from '../../src/index.js';

/*
 * What the gateway does with the key when the upstream fails. The rule: release only when the
 * request provably never reached the upstream; everything else may have run the operation, so
 * the key is held (409 outcome-uncertain) unless the upstream de-duplicates on the forwarded key.
 */

type Behaviour = (req: IncomingMessage, res: ServerResponse) => void;

/** An upstream that counts every request it received whole, then behaves as the path says. */
async function countingUpstream(behaviours: Record<string, Behaviour>) {
  const received: { path: string; headers: IncomingMessage['headers']; body: string }[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() });
      const behave = behaviours[req.url ?? ''] ?? ((_, r) => r.writeHead(201).end('created'));
      behave(req, res);
    });
  });
  await listen(server);
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    executions: (path: string) => received.filter((r) => r.path === path).length,
    received,
    close: () => closeServer(server),
  };
}

const listen = (server: Server, port = 0) =>
  new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });

const closeServer = (server: Server) =>
  new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });

async function gatewayFor(upstream: string, config: Partial<GatewayConfig> = {}, logger?: GatewayLogger) {
  return startGateway({
    config: { ...GATEWAY_DEFAULTS, upstream, port: 0, replayHeaders: [], routes: [], ...config },
    store: memoryStore({ onWarning() {} }),
    engine: { onWarning() {} },
    ...(logger ? { logger } : {}),
  });
}

/** A logger that keeps the warnings, as JSON lines would be written. */
function warningsLogger() {
  const warnings: string[] = [];
  const logger: GatewayLogger = {
    info() {},
    error() {},
    debug() {},
    warn: (obj, msg) => warnings.push(JSON.stringify({ ...obj, msg })),
  };
  return { logger, warnings };
}

const post = (url: string, path: string, key: string) =>
  fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer u', 'idempotency-key': key },
    body: '{"amount":1}',
    signal: AbortSignal.timeout(10_000),
  });

async function problemType(response: Response): Promise<string> {
  assert.equal(response.headers.get('content-type'), 'application/problem+json');
  return ((await response.json()) as { type: string }).type;
}

/** A loopback port nothing listens on (bound, then closed). */
async function freePort(): Promise<number> {
  const server = createServer();
  await listen(server);
  const { port } = server.address() as AddressInfo;
  await closeServer(server);
  return port;
}

const HANGS: Behaviour = () => {}; // never answers: the gateway's headers timeout fires
const RESETS: Behaviour = (req) => req.socket.resetAndDestroy();
const DIES_MID_BODY: Behaviour = (_req, res) => {
  res.writeHead(201, { 'content-type': 'application/json', 'content-length': '1000' });
  res.write('{"id":"ch_1",');
  setTimeout(() => res.socket?.destroy(), 20);
};
const FAILS_500: Behaviour = (_req, res) =>
  res.writeHead(500, { 'content-type': 'text/plain' }).end('database is down');

describe('gateway: upstream outcomes decide whether the key is released or held', () => {
  it('connection refused: nothing was sent, 502 and the key is released, so the retry runs', async () => {
    const port = await freePort();
    const gateway = await gatewayFor(`http://127.0.0.1:${port}`);
    let upstream: Server | undefined;
    try {
      const key = randomUUID();
      const refused = await post(gateway.url, '/charges', key);
      assert.equal(refused.status, 502);
      assert.equal(await problemType(refused), 'urn:idemkit:problem:upstream-unavailable');
      assert.ok(refused.headers.get('retry-after'), 'released: retrying with the same key is right');

      let executions = 0;
      upstream = createServer((req, res) => {
        executions++;
        req.resume().on('end', () => res.writeHead(201).end('created'));
      });
      await listen(upstream, port);
      const retry = await post(gateway.url, '/charges', key);
      assert.equal(retry.status, 201, 'the retry ran');
      assert.equal(executions, 1);
    } finally {
      await gateway.close();
      if (upstream) await closeServer(upstream);
    }
  });

  it('a header undici refuses while building the request counts as never sent (the key would be released)', async () => {
    const upstream = await countingUpstream({});
    const proxy = createUpstream(upstream.url, 5_000);
    try {
      // node's server never hands over such a header; a fake request stands in for one.
      const req = {
        method: 'POST',
        headers: { 'content-type': 'text/plain', 'x-note': 'a\r\nb' },
        socket: { remoteAddress: '127.0.0.1' },
      } as unknown as IncomingMessage;
      const failure = await proxy.forward(req, '/charges', Buffer.from('x'), 'k', 1024).then(
        () => assert.fail('forwarded a header with CR LF'),
        (error: unknown) => error,
      );
      assert.ok(failure instanceof UpstreamError);
      assert.equal(failure.requestSent, false);
      assert.equal(failure.code, 'upstream-unavailable');
      assert.equal(upstream.received.length, 0);
    } finally {
      await proxy.close();
      await upstream.close();
    }
  });

  it('a headers timeout after the request was written: 504, then 409 outcome-uncertain, one execution', async () => {
    const upstream = await countingUpstream({ '/charges': HANGS });
    const gateway = await gatewayFor(upstream.url, { upstreamTimeoutMs: 300 });
    try {
      const key = randomUUID();
      const first = await post(gateway.url, '/charges', key);
      assert.equal(first.status, 504);
      assert.equal(await problemType(first), 'urn:idemkit:problem:upstream-timeout');
      const retry = await post(gateway.url, '/charges', key);
      assert.equal(retry.status, 409);
      assert.equal(await problemType(retry), 'urn:idemkit:problem:outcome-uncertain');
      assert.equal(upstream.executions('/charges'), 1, 'the retry did not run the operation again');
      assert.equal(first.headers.get('retry-after'), null, 'no invitation to retry an uncertain outcome');
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });

  it('a reset after the upstream read the request: 502, then 409 outcome-uncertain, one execution; the log names the cause', async () => {
    const upstream = await countingUpstream({ '/charges': RESETS });
    const { logger, warnings } = warningsLogger();
    const gateway = await gatewayFor(upstream.url, {}, logger);
    try {
      const key = randomUUID();
      const first = await post(gateway.url, '/charges', key);
      assert.equal(first.status, 502);
      assert.equal(await problemType(first), 'urn:idemkit:problem:upstream-unavailable');
      const retry = await post(gateway.url, '/charges', key);
      assert.equal(retry.status, 409);
      assert.equal(await problemType(retry), 'urn:idemkit:problem:outcome-uncertain');
      assert.equal(upstream.executions('/charges'), 1);
      assert.equal(first.headers.get('retry-after'), null);
      const logged = warnings.find((line) => line.includes('upstream failed'));
      assert.ok(logged, 'the failure is logged');
      assert.match(logged, /"cause":"\w+"/);
      assert.match(logged, /"code":"(ECONNRESET|UND_ERR_SOCKET)"/);
      assert.match(logged, /"keyHeld":true/);
      assert.ok(!logged.includes(key) && !logged.includes('amount'), 'no client key, no body');
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });

  it('201 and headers, then the upstream dies mid-body: 502, then 409 outcome-uncertain, one execution', async () => {
    const upstream = await countingUpstream({ '/charges': DIES_MID_BODY });
    const gateway = await gatewayFor(upstream.url);
    try {
      const key = randomUUID();
      const first = await post(gateway.url, '/charges', key);
      assert.equal(first.status, 502);
      assert.equal(await problemType(first), 'urn:idemkit:problem:upstream-unavailable');
      const retry = await post(gateway.url, '/charges', key);
      assert.equal(retry.status, 409);
      assert.equal(await problemType(retry), 'urn:idemkit:problem:outcome-uncertain');
      assert.equal(upstream.executions('/charges'), 1);
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });

  it('an upstream 500 reaches the client as it was; the retry gets 409 outcome-uncertain, one execution', async () => {
    const upstream = await countingUpstream({ '/charges': FAILS_500 });
    const gateway = await gatewayFor(upstream.url);
    try {
      const key = randomUUID();
      const first = await post(gateway.url, '/charges', key);
      assert.equal(first.status, 500);
      assert.equal(await first.text(), 'database is down');
      const retry = await post(gateway.url, '/charges', key);
      assert.equal(retry.status, 409);
      assert.equal(await problemType(retry), 'urn:idemkit:problem:outcome-uncertain');
      assert.equal(upstream.executions('/charges'), 1);
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });

  it('upstreamDedupes on a route: 500, timeouts and resets release the key; the retry carries the same forwarded key', async () => {
    const upstream = await countingUpstream({ '/charges': FAILS_500, '/slow': HANGS, '/reset': RESETS });
    const gateway = await gatewayFor(upstream.url, {
      upstreamTimeoutMs: 300,
      routes: [{ path: '/*', upstreamDedupes: true }],
    });
    try {
      for (const [path, status] of [
        ['/charges', 500],
        ['/slow', 504],
        ['/reset', 502],
      ] as const) {
        const key = randomUUID();
        assert.equal((await post(gateway.url, path, key)).status, status, path);
        assert.equal((await post(gateway.url, path, key)).status, status, `${path}: released, ran again`);
        assert.equal(upstream.executions(path), 2, path);
        const [a, b] = upstream.received.filter((r) => r.path === path);
        assert.match(String(a?.headers['idempotency-key']), /^idemkit-/);
        assert.equal(a?.headers['idempotency-key'], b?.headers['idempotency-key'], 'the upstream can dedupe');
      }
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });

  it('upstreamDedupes for the whole gateway applies to every route; a route may turn it off', async () => {
    const upstream = await countingUpstream({ '/charges': FAILS_500, '/refunds': FAILS_500 });
    const gateway = await gatewayFor(upstream.url, {
      upstreamDedupes: true,
      routes: [{ path: '/refunds', upstreamDedupes: false }],
    });
    try {
      const charge = randomUUID();
      await post(gateway.url, '/charges', charge);
      assert.equal((await post(gateway.url, '/charges', charge)).status, 500);
      assert.equal(upstream.executions('/charges'), 2);
      const refund = randomUUID();
      await post(gateway.url, '/refunds', refund);
      assert.equal((await post(gateway.url, '/refunds', refund)).status, 409);
      assert.equal(upstream.executions('/refunds'), 1);
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });
});

/**
 * Sends a request the way curl sends uploads over 1 MB: `Expect: 100-continue`, then the body
 * only after the server's `100 Continue`. Resolves with the final status line and body.
 */
function expectContinueRequest(
  url: string,
  request: { method: string; path: string; headers: [string, string][]; body: string },
): Promise<{ continued: boolean; status: number; body: string }> {
  const { hostname, port } = new URL(url);
  const body = Buffer.from(request.body);
  const head = [
    `${request.method} ${request.path} HTTP/1.1`,
    `host: ${hostname}:${port}`,
    'connection: close',
    'expect: 100-continue',
    `content-length: ${body.length}`,
    ...request.headers.map(([n, v]) => `${n}: ${v}`),
  ].join('\r\n');
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let received = Buffer.alloc(0);
    let continued = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no answer within 5 s'));
    }, 5_000);
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const interim = 'HTTP/1.1 100 Continue\r\n\r\n';
      if (!continued && received.toString('latin1').startsWith(interim)) {
        continued = true;
        received = received.subarray(interim.length);
        socket.write(body);
      }
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const text = received.toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      resolve({ continued, status: Number(text.split(' ')[1]), body: text.slice(split + 4) });
    });
    socket.write(`${head}\r\n\r\n`);
  });
}

describe('gateway: Expect: 100-continue', () => {
  it('a covered upload with Expect: 100-continue is continued, forwarded without Expect, and stored', async () => {
    const upstream = await countingUpstream({});
    const gateway = await gatewayFor(upstream.url);
    try {
      const key = randomUUID();
      const headers: [string, string][] = [
        ['idempotency-key', key],
        ['authorization', 'Bearer u'],
        ['content-type', 'application/json'],
      ];
      const first = await expectContinueRequest(gateway.url, {
        method: 'POST',
        path: '/uploads',
        headers,
        body: '{"file":"x"}',
      });
      assert.equal(first.continued, true);
      assert.equal(first.status, 201);
      assert.equal(upstream.received[0]?.body, '{"file":"x"}');
      assert.equal(upstream.received[0]?.headers.expect, undefined, 'the gateway answered the expectation');
      const replay = await expectContinueRequest(gateway.url, {
        method: 'POST',
        path: '/uploads',
        headers,
        body: '{"file":"x"}',
      });
      assert.equal(replay.status, 201);
      assert.equal(upstream.executions('/uploads'), 1, 'replayed, not run again');
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });

  it('a pass-through upload with Expect: 100-continue reaches the upstream', async () => {
    const upstream = await countingUpstream({});
    const gateway = await gatewayFor(upstream.url, { routes: [{ path: '/files/*', methods: [] }] });
    try {
      const answer = await expectContinueRequest(gateway.url, {
        method: 'PUT',
        path: '/files/a.txt',
        headers: [['content-type', 'text/plain']],
        body: 'hello',
      });
      assert.equal(answer.continued, true);
      assert.equal(answer.status, 201);
      assert.equal(upstream.received[0]?.body, 'hello');
      assert.equal(upstream.received[0]?.headers.expect, undefined);
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });
});
