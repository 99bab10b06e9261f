import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadGatewayConfig } from '../../src/gateway/config.js';
import { forwardedElement, invalidProxyEntry } from '../../src/gateway/forwarded.js';
import { normalizePattern, normalizeTarget } from '../../src/gateway/path.js';

const STRICT = { foldCase: false, foldTrailingSlash: false };
const FOLDED = { foldCase: true, foldTrailingSlash: true };

describe('gateway request path', () => {
  it('decodes unreserved escapes, upper-cases the others, keeps the query byte for byte', () => {
    assert.deepEqual(normalizeTarget('/%63harges/%7euser/caf%c3%a9?a=%2f&b', STRICT), {
      ok: true,
      path: '/charges/~user/caf%C3%A9',
      query: 'a=%2f&b',
      target: '/charges/~user/caf%C3%A9?a=%2f&b',
    });
    // An escaped reserved character stays escaped: it is data, not a delimiter.
    const escaped = normalizeTarget('/a%3bb%3fc', STRICT);
    assert.equal(escaped.ok && escaped.path, '/a%3Bb%3Fc');
  });

  it('folds case and one trailing slash only when asked; escapes keep upper-case hex', () => {
    const strict = normalizeTarget('/Charges/', STRICT);
    const folded = normalizeTarget('/Charges/Caf%C3%A9/', FOLDED);
    assert.equal(strict.ok && strict.path, '/Charges/');
    assert.equal(folded.ok && folded.path, '/charges/caf%C3%A9');
    const root = normalizeTarget('/', FOLDED);
    assert.equal(root.ok && root.path, '/');
  });

  it('a plain path (no escape, ;, . or //) is taken as it is, folds and query included', () => {
    assert.deepEqual(normalizeTarget("/Orders/A-1_~x!$&'()*+,=:@/?q=%2F", FOLDED), {
      ok: true,
      path: "/orders/a-1_~x!$&'()*+,=:@",
      query: 'q=%2F',
      target: "/orders/a-1_~x!$&'()*+,=:@?q=%2F",
    });
    assert.deepEqual(normalizeTarget('/orders', STRICT), {
      ok: true,
      path: '/orders',
      query: '',
      target: '/orders',
    });
    assert.equal(normalizeTarget('/orders//', STRICT).ok, false);
  });

  it('route patterns are normalised like paths, * kept', () => {
    assert.equal(normalizePattern('/%63harges/*/', STRICT), '/charges/*/');
    assert.equal(normalizePattern('/Orders/*/', FOLDED), '/orders/*');
  });

  it('refuses what servers read differently', () => {
    for (const target of [
      'http://h/charges',
      '*',
      'h:443',
      '/a/./b',
      '/a/../b',
      '/a/%2E%2e/b',
      '/a//b',
      '//a',
      '/a;b',
      '/a%2Fb',
      '/a%5cb',
      '/a\\b',
      '/a%00',
      '/a%7f',
      '/a%g1',
      '/a%4',
      '/a#b',
      '/a b',
      '/a?b c',
      '/a?b#c',
    ]) {
      assert.equal(normalizeTarget(target, STRICT).ok, false, target);
    }
  });
});

describe('gateway forwarding headers', () => {
  it('writes RFC 7239 elements: IPv6 quoted and bracketed, a host with a port quoted', () => {
    assert.equal(
      forwardedElement('192.0.2.1', 'http', 'api.example'),
      'for=192.0.2.1;proto=http;host=api.example',
    );
    assert.equal(
      forwardedElement('2001:db8::1', 'https', 'api.example:8443'),
      'for="[2001:db8::1]";proto=https;host="api.example:8443"',
    );
    assert.equal(forwardedElement('', 'http', undefined), 'for=unknown;proto=http');
  });

  it('accepts IPs and CIDR ranges as trusted proxies, nothing else', () => {
    for (const ok of ['10.0.0.0/8', '127.0.0.1', '::1', 'fd00::/8', '0.0.0.0/0'])
      assert.equal(invalidProxyEntry(ok), undefined, ok);
    for (const bad of ['10.0.0.0/33', 'localhost', '10.0.0.0/8/1', '::1/129', '10.0.0.0/x', ''])
      assert.match(invalidProxyEntry(bad) ?? '', /IP address|prefix length/, bad);
  });
});

describe('gateway request-path settings', () => {
  it('flags, variables and the config file set the folds, trusted proxies, admin listener and timeouts', () => {
    const config = loadGatewayConfig({
      flags: {
        upstream: 'http://127.0.0.1:8080',
        foldCase: true,
        trustedProxies: '10.0.0.0/8, 127.0.0.1',
        headerTimeout: '2s',
        adminPort: '0',
      },
      env: { IDEMKIT_IDLE_TIMEOUT: '90s', IDEMKIT_FOLD_TRAILING_SLASH: 'yes' },
    });
    assert.equal(config.foldCase, true);
    assert.equal(config.foldTrailingSlash, true);
    assert.deepEqual(config.trustedProxies, ['10.0.0.0/8', '127.0.0.1']);
    assert.equal(config.headerTimeoutMs, 2_000);
    assert.equal(config.requestTimeoutMs, 60_000);
    assert.equal(config.idleTimeoutMs, 90_000);
    assert.equal(config.adminPort, 0);
    assert.equal(config.adminHost, '127.0.0.1');
    const file = loadGatewayConfig({
      flags: { config: 'idemkit.json' },
      env: {},
      readFile: () =>
        JSON.stringify({
          upstream: 'http://127.0.0.1:8080',
          trustedProxies: ['::1'],
          requestTimeoutMs: 5000,
        }),
    });
    assert.deepEqual(file.trustedProxies, ['::1']);
    assert.equal(file.requestTimeoutMs, 5_000);
  });

  it('a bad trusted proxy names the flag and an example', () => {
    assert.throws(
      () =>
        loadGatewayConfig({
          flags: { upstream: 'http://127.0.0.1:8080', trustedProxies: '10.0.0.0/33' },
          env: {},
        }),
      /--trusted-proxies: "10.0.0.0\/33" has a prefix length outside 0–32; use e.g. 10.0.0.0\/8,127.0.0.1/,
    );
  });
});
