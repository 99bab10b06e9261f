import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, type GatewayFlags, loadGatewayConfig } from '../../src/gateway/config.js';
import { GATEWAY_DEFAULTS } from '../../src/gateway/types.js';

const UPSTREAM = 'http://127.0.0.1:8080';

/** Loads with an in-memory file system: `files` maps a path to its text. */
function load(flags: GatewayFlags, env: Record<string, string> = {}, files: Record<string, unknown> = {}) {
  return loadGatewayConfig({
    flags,
    env,
    readFile(path) {
      const text = files[path];
      if (text === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
      return typeof text === 'string' ? text : JSON.stringify(text);
    },
  });
}

/** Asserts a ConfigError whose message matches every pattern. */
function fails(run: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    for (const pattern of patterns) assert.match(error.message, pattern);
    return true;
  });
}

describe('gateway config: precedence', () => {
  it('fills every unset field from GATEWAY_DEFAULTS', () => {
    const config = load({ upstream: UPSTREAM });

    assert.deepEqual(config, { ...GATEWAY_DEFAULTS, upstream: UPSTREAM, replayHeaders: [], routes: [] });
  });

  it('flag beats environment beats config file beats default, field by field', () => {
    const files = {
      'gw.json': { upstream: 'http://file:1', port: 1001, leaseMs: 1_000, retentionMs: 2_000, waitMs: 3_000 },
    };
    const env = {
      IDEMKIT_CONFIG: 'gw.json',
      IDEMKIT_PORT: '2002',
      IDEMKIT_LEASE: '2s',
      IDEMKIT_RETENTION: '4s',
    };

    const config = load({ port: '3003', lease: '3s' }, env, files);

    assert.equal(config.upstream, 'http://file:1'); // file only
    assert.equal(config.port, 3003); // flag over env and file
    assert.equal(config.leaseMs, 3_000); // flag over env and file
    assert.equal(config.retentionMs, 4_000); // env over file
    assert.equal(config.waitMs, 3_000); // file over default
    assert.equal(config.drainMs, GATEWAY_DEFAULTS.drainMs); // default
  });

  it('--config wins over IDEMKIT_CONFIG', () => {
    const files = { 'a.json': { upstream: 'http://a:1' }, 'b.json': { upstream: 'http://b:1' } };

    assert.equal(load({ config: 'b.json' }, { IDEMKIT_CONFIG: 'a.json' }, files).upstream, 'http://b:1');
  });

  it('treats an empty variable as unset', () => {
    assert.equal(load({ upstream: UPSTREAM }, { IDEMKIT_PORT: '', IDEMKIT_LEASE: '  ' }).port, 8787);
  });

  it('reads every setting from IDEMKIT_* variables, the secret only from there or the file', () => {
    const config = load(
      {},
      {
        IDEMKIT_UPSTREAM: 'https://api.internal/v1',
        IDEMKIT_HOST: '0.0.0.0',
        IDEMKIT_STORE: 'memory:',
        IDEMKIT_SECRET: 's'.repeat(32),
        IDEMKIT_PRINCIPAL_HEADER: 'X-Api-Key',
        IDEMKIT_TENANT_HEADER: 'X-Tenant',
        IDEMKIT_ALLOW_ANONYMOUS: 'yes',
        IDEMKIT_KEY_BODY_FIELD: 'request_id',
        IDEMKIT_KEY_QUERY_PARAM: 'ClientToken',
        IDEMKIT_MAX_BODY: '512kb',
        IDEMKIT_MAX_STORED: '0',
        IDEMKIT_STORE_TIMEOUT: '250ms',
        IDEMKIT_UPSTREAM_TIMEOUT: '1m',
        IDEMKIT_DRAIN: '0',
        IDEMKIT_FORWARD_KEY: 'original',
        IDEMKIT_REPLAY_HEADERS: 'X-Request-Id, Retry-After',
        IDEMKIT_LOG_LEVEL: 'warn',
      },
    );

    assert.deepEqual(
      { ...config },
      {
        ...GATEWAY_DEFAULTS,
        upstream: 'https://api.internal/v1',
        host: '0.0.0.0',
        store: 'memory:',
        secret: 's'.repeat(32),
        principalHeader: 'x-api-key',
        tenantHeader: 'x-tenant',
        allowAnonymous: true,
        keyBodyField: 'request_id',
        keyQueryParam: 'ClientToken',
        maxBodyBytes: 524_288,
        maxStoredBytes: 0,
        storeTimeoutMs: 250,
        upstreamTimeoutMs: 60_000,
        drainMs: 0,
        forwardKey: 'original',
        replayHeaders: ['x-request-id', 'retry-after'],
        logLevel: 'warn',
        routes: [],
      },
    );
  });

  it('takes --allow-anonymous without a value as true; the default refuses anonymous keyed requests', () => {
    assert.equal(load({ upstream: UPSTREAM }).allowAnonymous, false);
    assert.equal(load({ upstream: UPSTREAM, allowAnonymous: true }).allowAnonymous, true);
  });

  it('--upstream-dedupes (flag, IDEMKIT_UPSTREAM_DEDUPES or upstreamDedupes) defaults to false', () => {
    assert.equal(load({ upstream: UPSTREAM }).upstreamDedupes, false);
    assert.equal(load({ upstream: UPSTREAM, upstreamDedupes: true }).upstreamDedupes, true);
    assert.equal(load({ upstream: UPSTREAM }, { IDEMKIT_UPSTREAM_DEDUPES: 'yes' }).upstreamDedupes, true);
  });

  it('reads routes from the file, methods upper-cased, and freezes the result', () => {
    const files = {
      'gw.json': {
        upstream: UPSTREAM,
        routes: [
          { path: '/charges', methods: ['post'], leaseMs: 5_000, upstreamDedupes: true },
          { path: '/orders/*', required: false, waitMs: 2_000, principalHeader: 'X-Key' },
          { path: '/health', methods: [] },
        ],
      },
    };

    const config = load({ config: 'gw.json' }, {}, files);

    assert.deepEqual(config.routes, [
      { path: '/charges', methods: ['POST'], leaseMs: 5_000, upstreamDedupes: true },
      { path: '/orders/*', required: false, waitMs: 2_000, principalHeader: 'x-key' },
      { path: '/health', methods: [] },
    ]);
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.routes[0]));
  });
});

describe('gateway config: every mistake is a ConfigError that says what to fix', () => {
  it('a missing upstream names all three places to set it', () => {
    fails(() => load({}), /no upstream/, /--upstream http:/, /IDEMKIT_UPSTREAM/, /config file/);
  });

  it('an upstream that is no http(s) URL, or carries a query or credentials', () => {
    fails(() => load({ upstream: 'localhost:8080' }), /^--upstream: .*http:\/\/ or https:\/\//);
    fails(
      () => load({ upstream: 'not a url' }),
      /--upstream: "not a url" is not a URL; use e\.g\. http:\/\/127/,
    );
    fails(() => load({ upstream: 'ftp://x' }), /http:\/\/ or https:\/\//);
    fails(() => load({ upstream: 'http://x/?a=1' }), /must not have a query/);
    fails(() => load({}, { IDEMKIT_UPSTREAM: 'http://u:p@x' }), /^IDEMKIT_UPSTREAM: .*credentials/);
  });

  it('ports outside 0–65535, or not numbers', () => {
    fails(() => load({ upstream: UPSTREAM, port: 'eighty' }), /^--port: "eighty" is not a port; use 0–65535/);
    fails(
      () => load({ upstream: UPSTREAM }, { IDEMKIT_PORT: '70000' }),
      /^IDEMKIT_PORT: 70000 is not a port/,
    );
    fails(
      () => load({ config: 'c' }, {}, { c: { upstream: UPSTREAM, port: '80' } }),
      /config file c: port must be a number, got "80"/,
    );
  });

  it('durations without units, zero leases, strings in the file', () => {
    fails(() => load({ upstream: UPSTREAM, lease: '30' }), /^--lease: "30" is not a duration \(add a unit/);
    fails(() => load({ upstream: UPSTREAM, lease: '0' }), /^--lease: must be a positive whole number, got 0/);
    fails(
      () => load({ upstream: UPSTREAM }, { IDEMKIT_RETENTION: 'forever' }),
      /^IDEMKIT_RETENTION: "forever" is not a duration/,
    );
    fails(
      () => load({ config: 'c' }, {}, { c: { upstream: UPSTREAM, leaseMs: '30s' } }),
      /config file c: leaseMs must be a number of milliseconds, e\.g\. 30000, got "30s"/,
    );
    fails(
      () => load({ config: 'c' }, {}, { c: { upstream: UPSTREAM, waitMs: -1 } }),
      /waitMs: must be 0 or a positive whole number/,
    );
    fails(
      () => load({ config: 'c' }, {}, { c: { upstream: UPSTREAM, drainMs: 1.5 } }),
      /drainMs: must be 0 or a positive whole number/,
    );
  });

  it('sizes', () => {
    fails(() => load({ upstream: UPSTREAM, maxBody: 'huge' }), /^--max-body: "huge" is not a size/);
    fails(() => load({ upstream: UPSTREAM, maxBody: '0' }), /^--max-body: must be a positive whole number/);
    fails(
      () => load({ config: 'c' }, {}, { c: { upstream: UPSTREAM, maxBodyBytes: '1mb' } }),
      /maxBodyBytes must be a number of bytes/,
    );
  });

  it('store URLs', () => {
    fails(
      () => load({ upstream: UPSTREAM, store: 'mysql://x' }),
      /^--store: "mysql:\/\/x" is not a store URL; use sqlite:/,
    );
    fails(() => load({ upstream: UPSTREAM, store: 'sqlite::memory:' }), /use memory: instead/);
    fails(
      () => load({ upstream: UPSTREAM }, { IDEMKIT_STORE: 'redis://h?client=jedis' }),
      /^IDEMKIT_STORE: \?client=jedis/,
    );
    fails(
      () => load({ upstream: UPSTREAM, store: 'redis-cluster://a:1,b' }),
      /cluster node "b" must be host:port/,
    );
    fails(() => load({ upstream: UPSTREAM, store: 'postgres://u:hunter2@' }), /not a PostgreSQL URL/);
  });

  it('a store URL error never prints the password', () => {
    assert.throws(
      () => load({ upstream: UPSTREAM, store: 'mongodb://u:hunter2@h/db' }),
      (error: Error) => !error.message.includes('hunter2') && error.message.includes('***'),
    );
  });

  it('a short secret, a bad header name, a bad boolean, an unknown enum value', () => {
    fails(
      () => load({ upstream: UPSTREAM }, { IDEMKIT_SECRET: 'short' }),
      /^IDEMKIT_SECRET: the secret is 5 characters; use at least 16/,
      /openssl rand/,
    );
    fails(
      () => load({ upstream: UPSTREAM, principalHeader: 'X Key' }),
      /^--principal-header: "X Key" is not a header name/,
    );
    fails(
      () => load({ upstream: UPSTREAM }, { IDEMKIT_ALLOW_ANONYMOUS: 'maybe' }),
      /IDEMKIT_ALLOW_ANONYMOUS: "maybe" is not true or false/,
    );
    fails(
      () => load({ upstream: UPSTREAM, forwardKey: 'hash' }),
      /^--forward-key: "hash" is not one of derived, original, none/,
    );
    fails(
      () => load({ upstream: UPSTREAM, logLevel: 'loud' }),
      /^--log-level: "loud" is not one of fatal, error, warn, info, debug, silent/,
    );
    fails(() => load({ upstream: UPSTREAM, host: ' ' }), /^--host: give a host name/);
    fails(() => load({ upstream: UPSTREAM, port: true }), /^--port needs a value/);
  });

  it('replay headers that would leak credentials', () => {
    fails(
      () => load({ upstream: UPSTREAM, replayHeaders: 'x-id,Set-Cookie' }),
      /set-cookie is never replayed/,
    );
    fails(
      () => load({ config: 'c' }, {}, { c: { upstream: UPSTREAM, replayHeaders: 'x-id' } }),
      /replayHeaders must be an array/,
    );
  });

  it('a config file that cannot be read, is not JSON, or is not an object', () => {
    fails(
      () => load({ config: 'missing.json' }),
      /^--config: cannot read config file missing\.json \(no such file\); check the path/,
    );
    fails(() => load({}, { IDEMKIT_CONFIG: 'missing.json' }), /^IDEMKIT_CONFIG: cannot read/);
    fails(() => load({ config: 'c' }, {}, { c: '{ upstream: 1 }' }), /config file c is not valid JSON/);
    fails(() => load({ config: 'c' }, {}, { c: '[]' }), /config file c must hold a JSON object/);
    fails(() => load({ config: true }), /--config needs a file name/);
  });

  it('an unknown key is named, with a suggestion and the known keys', () => {
    fails(
      () => load({ config: 'c' }, {}, { c: { upstream: UPSTREAM, lease: 3000 } }),
      /config file c: unknown key "lease" \(did you mean "leaseMs"\?\); known keys: upstream, host/,
    );
    fails(
      () => load({ config: 'c' }, {}, { c: { upstream: UPSTREAM, colour: 'red' } }),
      /unknown key "colour"; known keys/,
    );
  });

  it('routes: shape, path patterns, methods, types and unknown keys', () => {
    const route = (r: unknown) => () =>
      load({ config: 'c' }, {}, { c: { upstream: UPSTREAM, routes: [{ path: '/ok' }, r] } });
    fails(
      () => load({ config: 'c' }, {}, { c: { upstream: UPSTREAM, routes: {} } }),
      /routes must be an array/,
    );
    fails(route('/charges'), /routes\[1\] must be an object/);
    fails(route({ methods: ['POST'] }), /routes\[1\]\.path is required: a path pattern such as "\/charges"/);
    fails(route({ path: 'charges' }), /routes\[1\]\.path: "charges" must start with \//);
    fails(route({ path: '/charges?x=1' }), /without spaces, query or fragment/);
    fails(route({ path: '/a/**' }), /one \* already matches/);
    fails(
      route({ path: '/a', methods: 'POST' }),
      /routes\[1\]\.methods must be an array such as \["POST", "PATCH"\]/,
    );
    fails(route({ path: '/a', methods: ['PO ST'] }), /routes\[1\]\.methods: "PO ST" is not an HTTP method/);
    fails(route({ path: '/a', required: 'yes' }), /routes\[1\]\.required must be true or false/);
    fails(route({ path: '/a', leaseMs: '5s' }), /routes\[1\]\.leaseMs must be a number of milliseconds/);
    fails(route({ path: '/a', leaseMs: 0 }), /routes\[1\]\.leaseMs: must be a positive whole number/);
    fails(
      route({ path: '/a', onUpstreamFailure: 'uncertain' }),
      /routes\[1\]: "onUpstreamFailure" was replaced by "upstreamDedupes"/,
    );
    fails(
      route({ path: '/a', upstreamDedupes: 'yes' }),
      /routes\[1\]\.upstreamDedupes must be true or false/,
    );
    fails(
      route({ path: '/a', lease: 5 }),
      /routes\[1\]: unknown key "lease" \(did you mean "leaseMs"\?\); route keys: path, methods/,
    );
  });
});

describe('gateway config: the principal source', () => {
  const secret = 'j'.repeat(32);

  it('a cookie, or a JWT from a JWKS and/or IDEMKIT_JWT_SECRET with its checks; cookie names keep their case', () => {
    const cookie = load({ upstream: UPSTREAM, principalCookie: 'SessionId' });
    const jwt = load(
      {
        upstream: UPSTREAM,
        jwtJwks: './keys.json',
        jwtIssuer: 'https://auth.example',
        jwtAudience: 'payments',
      },
      { IDEMKIT_JWT_SECRET: secret, IDEMKIT_JWT_HEADER: 'X-Id-Token' },
    );
    const fromFile = load(
      { config: 'c' },
      {},
      { c: { upstream: UPSTREAM, jwtJwks: 'https://auth.example/jwks' } },
    );

    assert.equal(cookie.principalCookie, 'SessionId');
    assert.equal(cookie.principalHeader, 'authorization', 'the default header stays, unused');
    assert.deepEqual(
      [jwt.jwtJwks, jwt.jwtSecret, jwt.jwtIssuer, jwt.jwtAudience, jwt.jwtHeader],
      ['./keys.json', secret, 'https://auth.example', 'payments', 'x-id-token'],
    );
    assert.equal(fromFile.jwtJwks, 'https://auth.example/jwks');
  });

  it('two sources at once are an error naming both and how to keep one', () => {
    fails(
      () => load({ upstream: UPSTREAM, principalCookie: 'sid', jwtJwks: './keys.json' }),
      /^--principal-cookie and --jwt-jwks each choose where the principal comes from; keep one/,
    );
    fails(
      () => load({ upstream: UPSTREAM, principalHeader: 'x-api-key' }, { IDEMKIT_JWT_SECRET: secret }),
      /^--principal-header and IDEMKIT_JWT_SECRET each choose/,
    );
    fails(
      () =>
        load(
          { config: 'c' },
          { IDEMKIT_PRINCIPAL_COOKIE: 'sid' },
          { c: { upstream: UPSTREAM, principalHeader: 'x-key' } },
        ),
      /^"principalHeader" in the config file and IDEMKIT_PRINCIPAL_COOKIE each choose/,
    );
  });

  it('JWT checks without JWT keys, a short JWT secret, bad names and a JWKS that is no file or http(s) URL', () => {
    fails(
      () => load({ upstream: UPSTREAM, jwtIssuer: 'https://a' }),
      /^--jwt-issuer only applies to JWTs: .*--jwt-jwks/,
    );
    fails(
      () => load({ upstream: UPSTREAM, jwtAudience: 'x', principalCookie: 'sid' }),
      /^--jwt-audience only applies/,
    );
    fails(
      () => load({ upstream: UPSTREAM }, { IDEMKIT_JWT_SECRET: 'short' }),
      /^IDEMKIT_JWT_SECRET: the JWT secret is 5 characters; HS256 needs at least 32/,
    );
    fails(
      () => load({ upstream: UPSTREAM, principalCookie: 'a b' }),
      /^--principal-cookie: "a b" is not a cookie name/,
    );
    fails(() => load({ upstream: UPSTREAM, jwtJwks: 'ftp://x/jwks' }), /^--jwt-jwks: .*file path or an http/);
    fails(
      () => load({ upstream: UPSTREAM, jwtIssuer: ' ', jwtJwks: 'k.json' }),
      /^--jwt-issuer: must not be empty/,
    );
  });

  it('the old requirePrincipal key says what replaced it', () => {
    fails(
      () => load({ config: 'c' }, {}, { c: { upstream: UPSTREAM, requirePrincipal: true } }),
      /unknown key "requirePrincipal" \(replaced by "allowAnonymous": keyed requests without a principal are refused unless allowAnonymous is true\); known keys:/,
    );
  });

  it('key carriers: a top-level body field and a query parameter name', () => {
    fails(
      () => load({ upstream: UPSTREAM, keyBodyField: 'meta.id' }),
      /^--key-body-field: "meta\.id" is not a top-level JSON field/,
    );
    fails(
      () => load({ upstream: UPSTREAM, keyQueryParam: 'a=b' }),
      /^--key-query-param: "a=b" is not a query parameter name/,
    );
  });
});
