import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { ConfigError } from '../../src/gateway/config-error.js';
import type { GatewayConfig } from '../../src/gateway/types.js';
import { memoryStore } from '../../src/index.js';
import { rawRequest } from '../../src/testing/raw-http.js';
import { gatewayFor } from '../support/gateway-upstream.js';

/*
 * Who the caller is, at the gateway, over real sockets: the principal scopes every key, so two
 * callers with the same key never see each other's results, and a keyed request without a
 * principal is refused unless the operator opts into one shared anonymous scope.
 */

const dir = mkdtempSync(join(tmpdir(), 'idemkit-gateway-principal-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** An upstream that answers `{"n": <count>, "caller": <cookie or authorization>}` and counts calls. */
async function countingUpstream() {
  const seen: { path: string; headers: IncomingHttpHeaders }[] = [];
  const server: Server = createServer((req, res) => {
    req.resume().on('end', () => {
      seen.push({ path: req.url ?? '', headers: req.headers });
      const caller = req.headers.cookie ?? req.headers.authorization ?? 'nobody';
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ n: seen.length, caller }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Runs `body` against a gateway with `config` in front of a fresh upstream, then closes both. */
async function withGateway(
  config: Partial<GatewayConfig>,
  body: (
    gateway: { url: string; adminUrl: string },
    upstream: Awaited<ReturnType<typeof countingUpstream>>,
  ) => Promise<void>,
): Promise<void> {
  const upstream = await countingUpstream();
  const store = memoryStore({ onWarning() {} });
  try {
    const gateway = await gatewayFor(upstream.url, config, store);
    try {
      await body(gateway, upstream);
    } finally {
      await gateway.close();
    }
  } finally {
    await upstream.close();
    await store.close();
  }
}

const charge = (url: string, key: string | undefined, headers: Record<string, string> = {}) =>
  fetch(`${url}/charges`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(key === undefined ? {} : { 'idempotency-key': key }),
      ...headers,
    },
    body: '{"amount":1299}',
    signal: AbortSignal.timeout(10_000),
  });

/** Asserts a problem+json answer with this status and type; returns its detail. */
async function problem(response: Response, status: number, code: string): Promise<string> {
  assert.equal(response.status, status);
  assert.equal(response.headers.get('content-type'), 'application/problem+json');
  const body = (await response.json()) as { type: string; detail: string };
  assert.equal(body.type, `urn:idemkit:problem:${code}`);
  return body.detail;
}

describe('gateway principal: no principal', () => {
  it('a keyed request without a principal is refused with 401 principal-required and never reaches the upstream', async () => {
    await withGateway({}, async (gateway, upstream) => {
      const response = await charge(gateway.url, 'order-1');

      await problem(response, 401, 'principal-required');
      assert.equal(upstream.seen.length, 0);
    });
  });

  it('with allowAnonymous the request runs in the shared scope, and the metric counts it', async () => {
    await withGateway({ allowAnonymous: true }, async (gateway, upstream) => {
      const first = await charge(gateway.url, 'order-1');
      const retry = await charge(gateway.url, 'order-1');
      const metrics = await (await fetch(`${gateway.adminUrl}/_idemkit/metrics`)).text();

      assert.equal(first.status, 201);
      assert.equal(retry.headers.get('idempotent-replayed'), 'true');
      assert.equal(upstream.seen.length, 1);
      assert.match(metrics, /^idemkit_anonymous_requests_total 2$/m);
    });
  });

  it('a keyless request on an optional route needs no principal', async () => {
    await withGateway({ routes: [{ path: '/charges', required: false }] }, async (gateway, upstream) => {
      const response = await charge(gateway.url, undefined);

      assert.equal(response.status, 201);
      assert.equal(upstream.seen.length, 1);
    });
  });
});

describe('gateway principal: cookie', () => {
  it('Alice and Bob send the same key with different session cookies: each gets their own result', async () => {
    await withGateway({ principalCookie: 'sid' }, async (gateway, upstream) => {
      const alice = await charge(gateway.url, 'order-1', { cookie: 'theme=dark; sid=alice' });
      const bob = await charge(gateway.url, 'order-1', { cookie: 'sid=bob; theme=dark' });
      const aliceAgain = await charge(gateway.url, 'order-1', { cookie: 'sid=alice' });

      assert.equal(alice.status, 201);
      assert.equal(bob.status, 201);
      assert.equal(bob.headers.get('idempotent-replayed'), 'false');
      assert.match(await bob.text(), /sid=bob/);
      assert.equal(aliceAgain.headers.get('idempotent-replayed'), 'true');
      assert.match(await aliceAgain.text(), /theme=dark; sid=alice/);
      assert.equal(upstream.seen.length, 2);
    });
  });

  it('without the named cookie (other cookies only, or an empty value) the request is refused', async () => {
    await withGateway({ principalCookie: 'sid' }, async (gateway, upstream) => {
      await problem(
        await charge(gateway.url, 'k', { cookie: 'theme=dark; SID=upper' }),
        401,
        'principal-required',
      );
      await problem(await charge(gateway.url, 'k', { cookie: 'sid=' }), 401, 'principal-required');
      // The Authorization header is not the principal when a cookie is.
      await problem(await charge(gateway.url, 'k', { authorization: 'Bearer x' }), 401, 'principal-required');
      assert.equal(upstream.seen.length, 0);
    });
  });

  it('reads the cookie from any Cookie field line and unquotes a quoted value', async () => {
    await withGateway({ principalCookie: 'sid' }, async (gateway, upstream) => {
      const request = (cookies: string[]) =>
        rawRequest(gateway.url, {
          method: 'POST',
          path: '/charges',
          headers: [['idempotency-key', 'order-9'], ...cookies.map((c): [string, string] => ['cookie', c])],
          body: '{}',
        });

      const first = await request(['theme=dark', 'sid=carol']);
      const quoted = await request(['sid="carol"']);

      assert.equal(first.status, 201);
      assert.equal(quoted.status, 201);
      assert.ok(quoted.headers.some(([name, value]) => name === 'idempotent-replayed' && value === 'true'));
      assert.equal(upstream.seen.length, 1);
    });
  });

  it('the cookie sent twice with two values is refused: the API might take either as the caller', async () => {
    await withGateway({ principalCookie: 'sid' }, async (gateway, upstream) => {
      const detail = await problem(
        await charge(gateway.url, 'k', { cookie: 'sid=alice; sid=mallory' }),
        401,
        'principal-required',
      );
      const same = await charge(gateway.url, 'k', { cookie: 'sid=alice; sid=alice' });

      assert.match(detail, /sid cookie was sent more than once/);
      assert.doesNotMatch(detail, /alice|mallory/);
      assert.equal(same.status, 201);
      assert.equal(upstream.seen.length, 1);
    });
  });
});

describe('gateway principal: JWT with an HS256 secret', () => {
  const secret = 'jwt-secret-for-tests-0123456789abcdef';
  const key = new TextEncoder().encode(secret);
  const sign = (claims: Record<string, unknown>, options: { alg?: string; exp?: string | number } = {}) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: options.alg ?? 'HS256' })
      .setIssuer('https://auth.example')
      .setIssuedAt()
      .setExpirationTime(options.exp ?? '5m')
      .sign(key);
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const config = { jwtSecret: secret, jwtIssuer: 'https://auth.example' };

  it('the subject is the principal: a re-issued token replays, another subject runs its own', async () => {
    await withGateway(config, async (gateway, upstream) => {
      const first = await charge(gateway.url, 'order-1', bearer(await sign({ sub: 'alice' })));
      const reissued = await charge(gateway.url, 'order-1', bearer(await sign({ sub: 'alice', jti: 'x' })));
      const bob = await charge(gateway.url, 'order-1', bearer(await sign({ sub: 'bob' })));

      assert.equal(first.status, 201);
      assert.equal(reissued.headers.get('idempotent-replayed'), 'true');
      assert.equal(bob.status, 201);
      assert.equal(bob.headers.get('idempotent-replayed'), 'false');
      assert.equal(upstream.seen.length, 2);
    });
  });

  it('a bad signature, an expired token, a wrong issuer, a missing sub or alg none: 401 that echoes nothing', async () => {
    await withGateway(config, async (gateway, upstream) => {
      const good = await sign({ sub: 'alice' });
      const [head, payload] = good.split('.');
      const tampered = `${head}.${payload}.${Buffer.alloc(32).toString('base64url')}`;
      const expired = await sign({ sub: 'alice' }, { exp: Math.floor(Date.now() / 1000) - 3_600 });
      const otherIssuer = await new SignJWT({ sub: 'alice' })
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuer('https://evil.example')
        .setExpirationTime('5m')
        .sign(key);
      const noSub = await sign({});
      const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${payload}.`;
      const otherSecret = await new SignJWT({ sub: 'alice' })
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuer('https://auth.example')
        .setExpirationTime('5m')
        .sign(new TextEncoder().encode('another-secret-0123456789abcdef-xyz'));

      for (const token of [tampered, expired, otherIssuer, noSub, none, otherSecret, 'not-a-jwt']) {
        const detail = await problem(
          await charge(gateway.url, 'k', bearer(token)),
          401,
          'principal-required',
        );
        assert.match(detail, /the bearer token did not verify/);
        assert.ok(!detail.includes(token) && !detail.includes('alice'), 'no token details echoed');
      }
      assert.equal(upstream.seen.length, 0);
    });
  });

  it('an unverifiable token is refused even with allowAnonymous: a bad credential is never anonymous', async () => {
    await withGateway({ ...config, allowAnonymous: true }, async (gateway, upstream) => {
      const basic = await charge(gateway.url, 'k', { authorization: 'Basic YWxpY2U6cHc=' });
      const forged = await charge(gateway.url, 'k', bearer('a.b.c'));
      const none = await charge(gateway.url, 'k');

      assert.match(await problem(basic, 401, 'principal-required'), /carries no Bearer token/);
      await problem(forged, 401, 'principal-required');
      assert.equal(none.status, 201, 'no credential at all: the shared anonymous scope');
      assert.equal(upstream.seen.length, 1);
    });
  });

  it('--jwt-header takes the token from another header, bare or as Bearer', async () => {
    await withGateway({ ...config, jwtHeader: 'x-id-token' }, async (gateway, upstream) => {
      const token = await sign({ sub: 'alice' });

      const bare = await charge(gateway.url, 'order-1', { 'x-id-token': token });
      const asBearer = await charge(gateway.url, 'order-1', { 'x-id-token': `Bearer ${token}` });

      assert.equal(bare.status, 201);
      assert.equal(asBearer.headers.get('idempotent-replayed'), 'true');
      assert.equal(upstream.seen.length, 1);
    });
  });
});

describe('gateway principal: JWT with a JWKS', () => {
  async function es256() {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: randomUUID(), use: 'sig' };
    const sign = (claims: Record<string, unknown>, audience = 'payments') =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: 'ES256', kid: jwk.kid })
        .setAudience(audience)
        .setExpirationTime('5m')
        .sign(privateKey);
    return { jwk, sign };
  }

  it('a JWKS file: a token signed by its key runs; another key, a wrong audience, or HS256 with the public key: 401', async () => {
    const signer = await es256();
    const stranger = await es256();
    const file = join(dir, 'jwks.json');
    writeFileSync(file, JSON.stringify({ keys: [signer.jwk] }));
    // Algorithm confusion: the public key's coordinates as an HMAC secret.
    const confused = await new SignJWT({ sub: 'alice' })
      .setProtectedHeader({ alg: 'HS256', kid: signer.jwk.kid })
      .setAudience('payments')
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(JSON.stringify(signer.jwk)));

    await withGateway({ jwtJwks: file, jwtAudience: 'payments' }, async (gateway, upstream) => {
      const ok = await charge(gateway.url, 'order-1', {
        authorization: `Bearer ${await signer.sign({ sub: 'alice' })}`,
      });
      const refused = [
        await stranger.sign({ sub: 'alice' }),
        await signer.sign({ sub: 'alice' }, 'someone-else'),
        confused,
      ];

      assert.equal(ok.status, 201);
      for (const token of refused) {
        await problem(
          await charge(gateway.url, 'k', { authorization: `Bearer ${token}` }),
          401,
          'principal-required',
        );
      }
      assert.equal(upstream.seen.length, 1);
    });
  });

  it('a JWKS URL: keys are fetched over HTTP; when the key server is down the answer is 502, not 401', async () => {
    const signer = await es256();
    const jwksServer = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [signer.jwk] }));
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    const jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/.well-known/jwks.json`;
    try {
      await withGateway({ jwtJwks: jwksUrl }, async (gateway) => {
        const token = await signer.sign({ sub: 'alice' });

        const ok = await charge(gateway.url, 'order-1', { authorization: `Bearer ${token}` });

        assert.equal(ok.status, 201);
      });
    } finally {
      await new Promise<void>((resolve) => jwksServer.close(() => resolve()));
    }

    await withGateway({ jwtJwks: jwksUrl }, async (gateway, upstream) => {
      const token = await signer.sign({ sub: 'alice' });

      const down = await charge(gateway.url, 'order-1', { authorization: `Bearer ${token}` });

      assert.match(await problem(down, 502, 'upstream-unavailable'), /could not be fetched; retry later/);
      assert.equal(upstream.seen.length, 0);
    });
  });

  it('a JWKS file that is missing, holds no keys or holds a secret key is a ConfigError at startup', async () => {
    const upstream = 'http://127.0.0.1:1';
    const start = (jwtJwks: string) => gatewayFor(upstream, { jwtJwks });
    const empty = join(dir, 'empty.json');
    writeFileSync(empty, '{"keys":[]}');
    const symmetric = join(dir, 'oct.json');
    writeFileSync(symmetric, JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }));

    await assert.rejects(
      start(join(dir, 'missing.json')),
      (e) => e instanceof ConfigError && /no such file/.test(e.message),
    );
    await assert.rejects(start(empty), (e) => e instanceof ConfigError && /one key or more/.test(e.message));
    await assert.rejects(
      start(symmetric),
      (e) => e instanceof ConfigError && /IDEMKIT_JWT_SECRET/.test(e.message),
    );
  });
});

describe('gateway principal: one source at a time', () => {
  it("a route's principalHeader beside a cookie or JWT source is a ConfigError at startup", async () => {
    const start = (config: Partial<GatewayConfig>) =>
      gatewayFor('http://127.0.0.1:1', {
        routes: [{ path: '/webhooks', principalHeader: 'x-api-key' }],
        ...config,
      });

    await assert.rejects(
      start({ principalCookie: 'sid' }),
      (e) =>
        e instanceof ConfigError &&
        /routes\[0\]\.principalHeader: the principal comes from a cookie/.test(e.message),
    );
    await assert.rejects(
      start({ jwtSecret: 'j'.repeat(32) }),
      (e) => e instanceof ConfigError && /comes from a JWT/.test(e.message),
    );
    await assert.rejects(
      start({ routes: [], principalCookie: 'sid', jwtSecret: 'j'.repeat(32) }),
      (e) => e instanceof ConfigError && /keep one/.test(e.message),
    );
  });
});

describe('gateway key carriers', () => {
  const auth = { authorization: 'Bearer sk_test_carriers' };

  it('keyBodyField: the AIP-155 request_id in the JSON body is the key when the header is absent', async () => {
    await withGateway({ keyBodyField: 'request_id' }, async (gateway, upstream) => {
      const send = (body: string) =>
        fetch(`${gateway.url}/charges`, {
          method: 'POST',
          headers: { ...auth, 'content-type': 'application/json' },
          body,
          signal: AbortSignal.timeout(10_000),
        });

      const first = await send('{"request_id":"r-1","amount":5}');
      const retry = await send('{"amount":5,"request_id":"r-1"}');
      const missing = await send('{"amount":5}');

      assert.equal(first.status, 201);
      assert.equal(retry.headers.get('idempotent-replayed'), 'true');
      await problem(missing, 400, 'missing-key');
      assert.equal(upstream.seen.length, 1);
    });
  });

  it('keyQueryParam: an EC2-style ClientToken query parameter is the key when the header is absent', async () => {
    await withGateway({ keyQueryParam: 'ClientToken' }, async (gateway, upstream) => {
      const send = (query: string) =>
        fetch(`${gateway.url}/instances?${query}`, {
          method: 'POST',
          headers: auth,
          body: '',
          signal: AbortSignal.timeout(10_000),
        });

      const first = await send('ClientToken=tok-1&Count=1');
      const retry = await send('ClientToken=tok-1&Count=1');
      const other = await send('ClientToken=tok-2&Count=1');

      assert.equal(first.status, 201);
      assert.equal(retry.headers.get('idempotent-replayed'), 'true');
      assert.equal(other.headers.get('idempotent-replayed'), 'false');
      assert.equal(upstream.seen.length, 2);
      assert.equal(
        upstream.seen[0]?.path,
        '/instances?ClientToken=tok-1&Count=1',
        'the query reaches the upstream',
      );
    });
  });
});
