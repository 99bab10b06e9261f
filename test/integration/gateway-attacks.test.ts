import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { sendRaw, sendSlowly } from '../support/gateway-raw.js';
import { gatewayFor, recordingUpstream } from '../support/gateway-upstream.js';

/*
 * What a hostile or broken client can send the gateway. Every case runs over real sockets against
 * a recording upstream, and checks both the answer and what the upstream did (or did not) receive.
 */

const KEYED = (key: string) => `Authorization: Bearer u\r\nIdempotency-Key: ${key}\r\n`;

const post = (url: string, path: string, key: string) =>
  sendRaw(
    url,
    `POST ${path} HTTP/1.1\r\nHost: gw\r\n${KEYED(key)}Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`,
  );

function assertProblem(answer: { status: number; head: string; body: string }, status: number, code: string) {
  assert.equal(answer.status, status, answer.head);
  assert.match(answer.head, /content-type: application\/problem\+json/i);
  assert.equal((JSON.parse(answer.body) as { type: string }).type, `urn:idemkit:problem:${code}`);
}

describe('gateway attacks: request smuggling', () => {
  const key = randomUUID();
  const head = `POST /charges HTTP/1.1\r\nHost: gw\r\n${KEYED(key)}`;
  const cases: [string, string][] = [
    [
      'Content-Length and Transfer-Encoding',
      `${head}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    ],
    ['two Content-Lengths', `${head}Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}x`],
    ['a comma-listed Content-Length', `${head}Content-Length: 2, 2\r\n\r\n{}`],
    ['an obs-folded header', `${head}X-Note: a\r\n b\r\nContent-Length: 2\r\n\r\n{}`],
    [
      'bare LF line ends',
      `POST /charges HTTP/1.1\nHost: gw\nIdempotency-Key: ${key}\nContent-Length: 2\n\n{}`,
    ],
    ['a bare LF inside the header block', `${head}X-Note: a\nContent-Length: 2\r\n\r\n{}`],
    [
      'Transfer-Encoding: chunked, then a malformed chunk',
      `${head}Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`,
    ],
    ['chunked not last in Transfer-Encoding', `${head}Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n`],
    // Node's parser de-chunks this but leaves the gzip coding applied; the gateway would forward
    // compressed bytes with no Transfer-Encoding saying so.
    [
      'a transfer coding before chunked',
      `${head}Transfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n`,
    ],
    ['a space before the colon', `${head}Transfer-Encoding : chunked\r\nContent-Length: 2\r\n\r\n{}`],
  ];
  for (const [name, bytes] of cases) {
    it(`${name}: 400 problem+json, the connection closed, nothing forwarded`, async () => {
      const upstream = await recordingUpstream();
      const gateway = await gatewayFor(upstream.url);
      try {
        const answer = await sendRaw(gateway.url, bytes);
        assertProblem(answer, 400, 'malformed-request');
        assert.equal(upstream.started(), 0, 'the upstream never saw the request');
        assert.equal((await post(gateway.url, '/charges', randomUUID())).status, 201, 'still serving');
      } finally {
        await gateway.close();
        await upstream.close();
      }
    });
  }

  it('CONNECT and absolute-form targets are refused, not proxied elsewhere', async () => {
    const upstream = await recordingUpstream();
    const gateway = await gatewayFor(upstream.url);
    try {
      const connect = await sendRaw(
        gateway.url,
        'CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n',
      );
      assertProblem(connect, 400, 'invalid-path');
      for (const target of ['http://169.254.169.254/charges', '*']) {
        const answer = await sendRaw(
          gateway.url,
          `OPTIONS ${target} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`,
        );
        assertProblem(answer, 400, 'invalid-path');
      }
      assert.equal(upstream.started(), 0);
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });
});

describe('gateway attacks: path spellings', () => {
  it('spellings of /charges the upstream may read as /charges replay the first result or are refused, never run again', async () => {
    const upstream = await recordingUpstream();
    const gateway = await gatewayFor(upstream.url, {
      foldCase: true,
      foldTrailingSlash: true,
      routes: [{ path: '/charges', waitMs: 0 }],
    });
    try {
      const key = randomUUID();
      assert.equal((await post(gateway.url, '/charges', key)).status, 201);
      for (const same of ['/charges/', '/CHARGES', '/Charges/', '/%63harges', '/%63HARGES/', '/charges?']) {
        const answer = await post(gateway.url, same, key);
        assert.equal(answer.status, 201, same);
        assert.match(answer.head, /idempotent-replayed: true/i, `${same} replays`);
      }
      for (const ambiguous of [
        '/charges;x',
        '/charges;jsessionid=1/',
        '/charges%2F',
        '/charges%2f',
        '/charges%5C',
        '/charges\\',
        '/charges/.',
        '/charges/%2e',
        '/charges/%2E%2E/charges',
        '/x/../charges',
        '//charges',
        '/charges//',
        '/charges#frag',
        '/charges%00',
        '/charges%zz',
        '/charges%',
        '/charges"',
        '/charges<x>',
      ]) {
        assertProblem(await post(gateway.url, ambiguous, key), 400, 'invalid-path');
      }
      assert.equal(upstream.seen.length, 1, 'one execution for one key');
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });

  it('without the folds, case and a trailing slash are distinct paths (forwarded as sent)', async () => {
    const upstream = await recordingUpstream();
    const gateway = await gatewayFor(upstream.url);
    try {
      const key = randomUUID();
      await post(gateway.url, '/charges', key);
      assert.equal((await post(gateway.url, '/CHARGES/', key)).status, 201);
      assert.deepEqual(
        upstream.seen.map((r) => r.path),
        ['/charges', '/CHARGES/'],
      );
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });

  it('//charges and //refunds are refused: they never share the scope of "/"', async () => {
    const upstream = await recordingUpstream();
    const gateway = await gatewayFor(upstream.url);
    try {
      const key = randomUUID();
      assertProblem(await post(gateway.url, '//charges', key), 400, 'invalid-path');
      assertProblem(await post(gateway.url, '//refunds', key), 400, 'invalid-path');
      assert.equal(upstream.started(), 0);
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });

  it('the upstream receives the normalised path the scope was built on, the query byte for byte', async () => {
    const upstream = await recordingUpstream();
    const gateway = await gatewayFor(`${upstream.url}/api`, { foldCase: true });
    try {
      const key = randomUUID();
      await post(gateway.url, '/%7EUser/%63harges/caf%c3%a9?Q=%2f&a=A', key);
      const replay = await post(gateway.url, '/~user/charges/CAF%C3%A9?Q=%2f&a=A', key);
      assert.match(replay.head, /idempotent-replayed: true/i);
      assert.deepEqual(
        upstream.seen.map((r) => r.path),
        ['/api/~user/charges/caf%C3%A9?Q=%2f&a=A'],
      );
      // Pass-through requests take the same path.
      await sendRaw(gateway.url, 'GET /%63harges/ HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n');
      assert.equal(upstream.seen[1]?.path, '/api/charges/');
      const refused = await sendRaw(
        gateway.url,
        'GET /a/../b HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n',
      );
      assertProblem(refused, 400, 'invalid-path');
      assert.equal(upstream.seen.length, 2);
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });
});

describe('gateway attacks: admin endpoints', () => {
  it('the main port has no admin paths: /_idemkit/* in any spelling goes to the upstream or is refused', async () => {
    const upstream = await recordingUpstream(() => ({ status: 404 }));
    const gateway = await gatewayFor(upstream.url);
    try {
      for (const path of ['/_idemkit/health', '/_idemkit/metrics', '/_IDEMKIT/metrics']) {
        const answer = await sendRaw(
          gateway.url,
          `GET ${path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`,
        );
        assert.equal(answer.status, 404, path);
        assert.doesNotMatch(answer.body, /idemkit_/, 'no metrics on the main port');
      }
      assert.equal(upstream.seen.length, 3);
      for (const path of ['//_idemkit/metrics', '/_idemkit/./metrics', '/x/../_idemkit/metrics']) {
        const answer = await sendRaw(
          gateway.url,
          `GET ${path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`,
        );
        assertProblem(answer, 400, 'invalid-path');
      }
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });

  it('the admin listener answers GET and HEAD on the exact paths only; other methods 405', async () => {
    const upstream = await recordingUpstream();
    const gateway = await gatewayFor(upstream.url);
    try {
      assert.match(gateway.adminUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.notEqual(gateway.adminUrl, gateway.url);
      const health = await sendRaw(
        gateway.adminUrl,
        'GET /_idemkit/health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
      );
      assert.equal(health.status, 200);
      assert.equal((JSON.parse(health.body) as { status: string }).status, 'ok');
      const head = await sendRaw(
        gateway.adminUrl,
        'HEAD /_idemkit/metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
      );
      assert.equal(head.status, 200);
      assert.equal(head.body, '');
      for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS', 'TRACE']) {
        const answer = await sendRaw(
          gateway.adminUrl,
          `${method} /_idemkit/health HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
        );
        assert.equal(answer.status, 405, method);
        assert.match(answer.head, /allow: GET, HEAD/i);
      }
      for (const path of [
        '/_IDEMKIT/health',
        '//_idemkit/health',
        '/_idemkit/./health',
        '/_idemkit/health/',
        '/x',
      ]) {
        const answer = await sendRaw(
          gateway.adminUrl,
          `GET ${path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`,
        );
        assert.equal(answer.status, 404, path);
      }
      assert.equal(upstream.started(), 0, 'the admin listener never proxies');
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });
});

describe('gateway attacks: forwarding headers', () => {
  const spoofed =
    'X-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6;host=evil\r\nX-Real-IP: 6.6.6.6\r\n' +
    'X-Forwarded-Port: 443\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\n' +
    'X-Original-URL: /admin\r\n';
  const request = (url: string) =>
    sendRaw(url, `GET /status HTTP/1.1\r\nHost: api.example:8787\r\n${spoofed}Connection: close\r\n\r\n`);

  it('from an untrusted peer, client forwarding headers are dropped and set afresh', async () => {
    const upstream = await recordingUpstream(() => ({ status: 200 }));
    const gateway = await gatewayFor(upstream.url);
    try {
      await request(gateway.url);
      const headers = upstream.seen[0]?.headers ?? {};
      assert.equal(headers['x-forwarded-for'], '127.0.0.1');
      assert.equal(headers['x-forwarded-proto'], 'http');
      assert.equal(headers['x-forwarded-host'], 'api.example:8787');
      assert.equal(headers.forwarded, 'for=127.0.0.1;proto=http;host="api.example:8787"');
      for (const name of ['x-real-ip', 'x-forwarded-port', 'x-original-url'])
        assert.equal(headers[name], undefined, name);
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });

  it('from a trusted proxy, the chain is kept and this hop appended', async () => {
    const upstream = await recordingUpstream(() => ({ status: 200 }));
    const gateway = await gatewayFor(upstream.url, { trustedProxies: ['10.0.0.0/8', '127.0.0.1'] });
    try {
      await request(gateway.url);
      const headers = upstream.seen[0]?.headers ?? {};
      assert.equal(headers['x-forwarded-for'], '6.6.6.6, 127.0.0.1');
      assert.equal(headers['x-forwarded-proto'], 'https');
      assert.equal(headers['x-forwarded-host'], 'evil.example');
      assert.equal(
        headers.forwarded,
        'for=6.6.6.6;host=evil, for=127.0.0.1;proto=http;host="api.example:8787"',
      );
      assert.equal(headers['x-real-ip'], '6.6.6.6');
      assert.equal(headers['x-forwarded-port'], '443');
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });
  it('an IPv6 peer is written quoted and bracketed in Forwarded', async () => {
    const upstream = await recordingUpstream(() => ({ status: 200 }));
    const gateway = await gatewayFor(upstream.url, { host: '::1' });
    try {
      await request(gateway.url);
      const headers = upstream.seen[0]?.headers ?? {};
      assert.equal(headers['x-forwarded-for'], '::1');
      assert.match(String(headers.forwarded), /^for="\[::1\]";proto=http;host=/);
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });
});

describe('gateway attacks: slow clients', () => {
  const timeouts = { headerTimeoutMs: 400, requestTimeoutMs: 800, idleTimeoutMs: 400 };

  it('headers sent a byte at a time are cut off (408) within the header timeout', async () => {
    const upstream = await recordingUpstream();
    const gateway = await gatewayFor(upstream.url, timeouts);
    try {
      const answer = await sendSlowly(
        gateway.url,
        'POST /charges HTTP/1.1\r\nHost: gw\r\n',
        `X-Slow: ${'a'.repeat(200)}`,
        50,
      );
      assertProblem(answer, 408, 'request-timeout');
      assert.equal(upstream.started(), 0);
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });

  it('a pass-through body sent slowly is cut off and the upstream socket is freed', async () => {
    const upstream = await recordingUpstream();
    const gateway = await gatewayFor(upstream.url, {
      ...timeouts,
      routes: [{ path: '/uploads', methods: [] }],
    });
    try {
      const answer = await sendSlowly(
        gateway.url,
        'POST /uploads HTTP/1.1\r\nHost: gw\r\nContent-Length: 1000\r\n\r\n',
        'x'.repeat(1000),
        50,
      );
      assert.ok(answer.elapsedMs < 4_000, `closed after ${answer.elapsedMs} ms`);
      assert.equal(upstream.started(), 1, 'the stream had reached the upstream');
      assert.equal(upstream.seen.length, 0, 'the upstream never got a complete body');
      const deadline = Date.now() + 3_000;
      while (upstream.abandoned() === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.equal(
        upstream.abandoned(),
        1,
        'the upstream request was cut too: no socket left pinned by the slow client',
      );
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });

  it('a covered body sent slowly is cut off before anything is forwarded', async () => {
    const upstream = await recordingUpstream();
    const gateway = await gatewayFor(upstream.url, timeouts);
    try {
      const answer = await sendSlowly(
        gateway.url,
        `POST /charges HTTP/1.1\r\nHost: gw\r\n${KEYED(randomUUID())}Content-Length: 500\r\n\r\n`,
        'x'.repeat(500),
        50,
      );
      assert.ok(answer.elapsedMs < 4_000, `closed after ${answer.elapsedMs} ms`);
      assert.equal(upstream.started(), 0);
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });

  it('an idle keep-alive connection is closed after the idle timeout', async () => {
    const upstream = await recordingUpstream(() => ({ status: 200 }));
    const gateway = await gatewayFor(upstream.url, timeouts);
    try {
      const answer = await sendRaw(gateway.url, 'GET /status HTTP/1.1\r\nHost: gw\r\n\r\n');
      assert.equal(answer.status, 200);
      assert.ok(answer.elapsedMs < 3_000, `closed after ${answer.elapsedMs} ms`);
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });
});
