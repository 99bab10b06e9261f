import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hashCredential, scopeHash } from '../../src/core/scope.js';
import { runCli, startCli } from '../support/cli.js';
import { tempSchema } from '../support/postgres-service.js';
import { REDIS_URL } from '../support/redis-service.js';

/*
 * `idemkit gateway` as an operator runs it: a child process with JSON logs, a real upstream,
 * the default SQLite store in a file, SIGTERM draining an in-flight request. Then `inspect` and
 * `purge` read and delete what that gateway wrote.
 */

const dir = mkdtempSync(join(tmpdir(), 'idemkit-cli-gateway-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const store = `sqlite:${join(dir, 'gateway.db')}`;
const AUTH = 'Bearer sk_test_cli';
const KEY = 'order-4711';

let upstream: Server;
let upstreamUrl: string;
const received: { path: string; key: string | undefined }[] = [];

before(async () => {
  upstream = createServer((req, res) => {
    received.push({ path: req.url ?? '', key: req.headers['idempotency-key'] as string | undefined });
    req.resume().on('end', () => {
      const delay = req.url === '/slow' ? 600 : 0;
      setTimeout(() => {
        res.writeHead(201, {
          'content-type': 'application/json',
          location: '/charges/ch_1',
          'x-secret-header': 'no',
        });
        res.end(JSON.stringify({ id: 'ch_1', n: received.length }));
      }, delay);
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((resolve) => upstream.close(() => resolve())));

const post = (url: string, path: string) =>
  fetch(`${url}${path}`, {
    method: 'POST',
    headers: { authorization: AUTH, 'idempotency-key': KEY, 'content-type': 'application/json' },
    body: '{"amount":1299}',
  });

describe('idemkit gateway (child process)', () => {
  it('serves, replays, reports health, and on SIGTERM drains the in-flight request, then exits 0', async () => {
    const gateway = startCli(
      [
        'gateway',
        '--upstream',
        upstreamUrl,
        '--port',
        '0',
        '--admin-port',
        '0',
        '--store',
        store,
        '--lease',
        '5s',
      ],
      {
        IDEMKIT_DRAIN: '5s',
      },
    );
    try {
      const listening = await gateway.waitForLog('idemkit gateway listening');
      const url = listening.url as string;

      const first = await post(url, '/charges');
      const firstBody = await first.text();
      const retry = await post(url, '/charges');
      const retryBody = await retry.text();
      const health = await fetch(`${listening.adminUrl as string}/_idemkit/health`);
      const slow = post(url, '/slow');
      // SIGTERM once the slow request is at the upstream (in flight in the gateway); a fixed
      // sleep could send it before the request reached a loaded gateway, which then refuses it.
      const deadline = Date.now() + 10_000;
      while (!received.some((r) => r.path === '/slow') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 10));
      const inFlightAtSigterm = received.some((r) => r.path === '/slow');
      gateway.child.kill('SIGTERM');
      const slowResponse = await slow;
      const code = await gateway.exited;

      assert.equal(first.status, 201);
      assert.equal(first.headers.get('idempotent-replayed'), 'false');
      assert.equal(retry.status, 201);
      assert.equal(retry.headers.get('idempotent-replayed'), 'true');
      assert.equal(retryBody, firstBody);
      assert.equal(received.filter((r) => r.path === '/charges').length, 1);
      assert.match(received[0]?.key ?? '', /^idemkit-/); // the derived key, not the client's
      assert.equal(health.status, 200);
      assert.ok(inFlightAtSigterm, 'the slow request reached the upstream before SIGTERM');
      assert.equal(slowResponse.status, 201);
      assert.equal(code, 0);
      const messages = gateway.logs.map((l) => l.msg);
      for (const msg of ['store opened', 'draining in-flight requests', 'stopped'])
        assert.ok(messages.includes(msg), msg);
      assert.ok(!JSON.stringify(gateway.logs).includes(KEY), 'logs carry hashed keys only');
    } finally {
      gateway.child.kill('SIGKILL');
    }
  });

  it('the listening log says where the principal comes from, and loudly when anonymous keyed requests are allowed', async () => {
    const jwks = join(dir, 'jwks.json');
    writeFileSync(jwks, JSON.stringify({ keys: [{ kty: 'OKP', crv: 'Ed25519', x: 'A'.repeat(43) }] }));
    const base = [
      'gateway',
      '--upstream',
      upstreamUrl,
      '--port',
      '0',
      '--admin-port',
      '0',
      '--store',
      'memory:',
    ];
    const runs = {
      'header authorization': startCli(base),
      'cookie sid; ANONYMOUS keyed requests allowed (shared scope)': startCli([
        ...base,
        '--principal-cookie',
        'sid',
        '--allow-anonymous',
      ]),
      [`jwt sub (jwks file ${jwks}, iss https://auth.example; from authorization)`]: startCli([
        ...base,
        '--jwt-jwks',
        jwks,
        '--jwt-issuer',
        'https://auth.example',
      ]),
    };
    try {
      for (const [principal, gateway] of Object.entries(runs)) {
        const listening = await gateway.waitForLog('idemkit gateway listening');
        assert.equal(listening.principal, principal);
        const warned = gateway.logs.some((l) => String(l.msg).startsWith('ANONYMOUS keyed requests allowed'));
        assert.equal(warned, principal.includes('ANONYMOUS'));
      }
      const anonymous = runs['cookie sid; ANONYMOUS keyed requests allowed (shared scope)'];
      const { url } = await anonymous.waitForLog('idemkit gateway listening');
      const response = await fetch(`${url as string}/charges`, {
        method: 'POST',
        headers: { 'idempotency-key': 'k-anon', 'content-type': 'application/json' },
        body: '{}',
      });
      assert.equal(response.status, 201, 'no cookie: runs in the shared anonymous scope');
    } finally {
      for (const gateway of Object.values(runs)) gateway.child.kill('SIGKILL');
    }
  });

  it('a port in use is a runtime failure (exit 1) with the reason', async () => {
    const { code, stderr } = await runCli([
      'gateway',
      '--upstream',
      upstreamUrl,
      '--port',
      String((upstream.address() as AddressInfo).port),
      '--admin-port',
      '0',
      '--store',
      'memory:',
    ]);

    assert.equal(code, 1);
    assert.match(stderr, /EADDRINUSE/);
  });
});

describe('idemkit gateway on the shared stores', () => {
  const schema = tempSchema({ before, after }, 'idemkit_cli_gw');

  const stores = {
    postgres: () => schema.url,
    'redis (node-redis)': () => `${REDIS_URL}?client=node-redis`,
    'redis (ioredis)': () => `${REDIS_URL}?client=ioredis`,
  };
  for (const [name, url] of Object.entries(stores)) {
    it(`${name}: IDEMKIT_SECRET reaches the engine; a retry replays; SIGTERM exits 0`, async () => {
      if (name === 'postgres') assert.equal((await runCli(['migrate', '--store', url()])).code, 0);
      // A short retention: the shared Redis keeps no test records for a day.
      const gateway = startCli(
        ['gateway', '--upstream', upstreamUrl, '--port', '0', '--admin-port', '0', '--retention', '1m'],
        {
          IDEMKIT_STORE: url(),
          IDEMKIT_SECRET: randomBytes(32).toString('base64url'),
        },
      );
      try {
        const { url: base } = await gateway.waitForLog('idemkit gateway listening');
        const path = `/charges/${randomBytes(6).toString('hex')}`;

        const first = await post(base as string, path);
        const retry = await post(base as string, path);
        gateway.child.kill('SIGTERM');

        assert.equal(first.status, 201, await first.text());
        assert.equal(retry.headers.get('idempotent-replayed'), 'true');
        assert.equal(received.filter((r) => r.path === path).length, 1);
        assert.equal(await gateway.exited, 0);
      } finally {
        gateway.child.kill('SIGKILL');
      }
    });
  }
});

describe('idemkit inspect and purge on the file that gateway wrote', () => {
  const selector = ['--store', store, '--path', '/charges', '--key', KEY];

  it('inspect finds the record by the principal, prints state and response but not the body', async () => {
    const { code, stdout } = await runCli(['inspect', ...selector, '--principal', AUTH]);

    assert.equal(code, 0);
    assert.match(stdout, /^store key +[0-9a-f]{64}$/m);
    assert.match(stdout, /^state +completed$/m);
    assert.match(stdout, /^generation +1$/m);
    assert.match(stdout, /^expires +\d{4}-\d\d-\d\dT.*\(in 2\d(\.\d)?h\)$/m);
    assert.match(stdout, /^response +201, \d+ bytes$/m);
    assert.match(stdout, /content-type: application\/json/);
    assert.match(stdout, /location: \/charges\/ch_1/);
    assert.doesNotMatch(stdout, /x-secret-header/); // not on the replay allowlist, so never stored
    assert.doesNotMatch(stdout, /ch_1", ?"n"/); // no body without --body
  });

  it('--principal-hash, a quoted key and --store-key find the same record; --body and --json show the body', async () => {
    const principalHash = hashCredential(AUTH);
    const storeKey = scopeHash({
      tenant: '',
      principal: principalHash,
      method: 'POST',
      path: '/charges',
      key: KEY,
    });

    const [byHash, byStoreKey, json] = await Promise.all([
      runCli([
        'inspect',
        '--store',
        store,
        '--path',
        '/charges',
        '--key',
        `"${KEY}"`,
        '--principal-hash',
        principalHash,
        '--body',
      ]),
      runCli(['inspect', '--store', store, '--store-key', storeKey]),
      runCli(['inspect', ...selector, '--principal', AUTH, '--json', '--body']),
    ]);

    assert.equal(byHash.code, 0);
    assert.match(byHash.stdout, new RegExp(`^store key +${storeKey}$`, 'm'));
    assert.match(byHash.stdout, /\{"id":"ch_1","n":1\}/);
    assert.match(byStoreKey.stdout, /^state +completed$/m);
    const record = JSON.parse(json.stdout);
    assert.equal(record.key, storeKey);
    assert.equal(record.response.status, 201);
    assert.equal(Buffer.from(record.response.body, 'base64').toString(), '{"id":"ch_1","n":1}');
  });

  it('another principal, method or path finds nothing: exit 1 with why', async () => {
    const results = await Promise.all([
      runCli(['inspect', ...selector, '--principal', 'Bearer someone-else']),
      runCli(['inspect', ...selector, '--principal', AUTH, '--method', 'PATCH']),
      runCli(['inspect', ...selector]), // anonymous
    ]);

    for (const { code, stderr } of results) {
      assert.equal(code, 1);
      assert.match(
        stderr,
        /no record for this request in sqlite:.*gateway\.db \(store key [0-9a-f]{64}\): never used, swept after retention, or another principal/,
      );
    }
  });

  it('purge deletes the one record; then inspect finds nothing and purging again exits 1', async () => {
    const purged = await runCli(['purge', ...selector, '--principal', AUTH]);
    const inspected = await runCli(['inspect', ...selector, '--principal', AUTH]);
    const again = await runCli(['purge', ...selector, '--principal', AUTH]);

    assert.equal(purged.code, 0);
    assert.match(purged.stdout, /^deleted record [0-9a-f]{64}; the next request with this key runs again\n$/);
    assert.equal(inspected.code, 1);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /no record [0-9a-f]{64} in sqlite:/);
  });
});
