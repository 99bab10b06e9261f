import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hashCredential } from '../../src/core/scope.js';
import { cookieValues, createPrincipalResolver, PrincipalRejected } from '../../src/gateway/principal.js';
import { GATEWAY_DEFAULTS, type GatewayConfig } from '../../src/gateway/types.js';

const config = (settings: Partial<GatewayConfig>): GatewayConfig => ({
  ...GATEWAY_DEFAULTS,
  upstream: 'http://127.0.0.1:1',
  replayHeaders: [],
  routes: [],
  ...settings,
});
const request = (headers: Record<string, string | string[]>) => ({
  method: 'POST',
  path: '/charges',
  headers,
});

describe('cookieValues (RFC 6265 §4.2.1)', () => {
  it('finds the named cookie in any field line, by its exact (case-sensitive) name', () => {
    assert.deepEqual(cookieValues(['a=1; sid=x', 'b=2'], 'sid'), ['x']);
    assert.deepEqual(cookieValues(['theme=dark', ' sid = y '], 'sid'), ['y']);
    assert.deepEqual(cookieValues(['SID=x; sidx=y; xsid=z'], 'sid'), []);
  });

  it('keeps = inside a value, unwraps a quoted value, skips pairs without =', () => {
    assert.deepEqual(cookieValues(['sid=a=b=='], 'sid'), ['a=b==']);
    assert.deepEqual(cookieValues(['sid="quoted"'], 'sid'), ['quoted']);
    assert.deepEqual(cookieValues(['sid; other=1'], 'sid'), []);
  });

  it('returns every occurrence, so the caller can refuse an ambiguous one', () => {
    assert.deepEqual(cookieValues(['sid=a; sid=b'], 'sid'), ['a', 'b']);
  });
});

describe('principal resolvers', () => {
  it('the header source hashes the route header, as inspect --principal does; no header is anonymous', async () => {
    const resolver = await createPrincipalResolver(config({}));

    assert.equal(resolver.description, 'header authorization');
    assert.equal(
      await resolver.resolve(request({ authorization: 'Bearer a' }), 'authorization'),
      hashCredential('Bearer a'),
    );
    assert.equal(await resolver.resolve(request({ 'x-api-key': 'k' }), 'x-api-key'), hashCredential('k'));
    assert.equal(await resolver.resolve(request({}), 'authorization'), undefined);
  });

  it('the cookie source hashes the value; the same value twice is one caller, two values are refused', async () => {
    const resolver = await createPrincipalResolver(config({ principalCookie: 'sid' }));

    assert.equal(resolver.description, 'cookie sid');
    assert.equal(
      await resolver.resolve(request({ cookie: ['sid=alice', 'sid=alice'] }), 'authorization'),
      hashCredential('alice'),
    );
    assert.equal(await resolver.resolve(request({ cookie: 'sid=' }), 'authorization'), undefined);
    assert.throws(
      () => resolver.resolve(request({ cookie: 'sid=alice; sid=bob' }), 'authorization'),
      (e) => e instanceof PrincipalRejected && e.code === 'principal-required',
    );
  });
});
