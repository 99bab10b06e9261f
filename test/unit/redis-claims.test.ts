import assert from 'node:assert/strict';
import { it } from 'node:test';
import { type RedisClaim, redisClaims } from '../../src/stores/redis-claims.js';

const claim = (key: string): RedisClaim => ({
  key,
  value: `value of ${key}`,
  fingerprint: 'fp',
  retentionMs: '1000',
  ttlMs: '2000',
});

it('hands a claim back once, only for its own key', () => {
  const claims = redisClaims();
  claims.add('t1', claim('a'));
  assert.equal(claims.take('t1', 'a')?.value, 'value of a');
  assert.equal(claims.take('t1', 'a'), undefined);
  claims.add('t2', claim('b'));
  assert.equal(claims.take('t2', 'other'), undefined);
  assert.equal(claims.take('t2', 'b'), undefined, 'a mismatched take forgets it');
  claims.add('t3', claim('c'));
  claims.forget('t3');
  assert.equal(claims.take('t3', 'c'), undefined);
});

it('keeps at most `max` claims, forgetting the oldest, at constant cost', () => {
  const claims = redisClaims(100);
  for (let i = 0; i < 1_000; i++) claims.add(`t${i}`, claim(`k${i}`));
  let kept = 0;
  for (let i = 0; i < 1_000; i++) if (claims.take(`t${i}`, `k${i}`)) kept++;
  assert.ok(kept >= 50 && kept <= 100, `kept ${kept}`);
  assert.ok(claims.take('t999', 'k999') === undefined);
  const fresh = redisClaims(100);
  for (let i = 0; i < 1_000; i++) fresh.add(`t${i}`, claim(`k${i}`));
  assert.equal(fresh.take('t999', 'k999')?.key, 'k999', 'the newest is kept');
  assert.equal(fresh.take('t0', 'k0'), undefined, 'the oldest is gone');
  // A million adds past the bound stay cheap (no scan of forgotten entries).
  const started = performance.now();
  for (let i = 0; i < 1_000_000; i++) fresh.add(`u${i}`, claim('k'));
  assert.ok(performance.now() - started < 5_000);
});
