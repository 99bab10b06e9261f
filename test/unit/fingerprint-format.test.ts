import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import { canonicalJson } from '../../src/core/canonical-json.js';
import { createFingerprint, type VersionedSecret } from '../../src/core/fingerprint.js';

const OPTIONS = { excludeFields: [], bodyMode: 'canonical' as const };

/** The fingerprint as records already in a store were written: one Hmac over head, kind, body. */
function reference(
  secret: VersionedSecret,
  head: unknown[],
  kind: 'j' | 'r',
  body: string | Uint8Array,
): string {
  const hmac = createHmac('sha256', Buffer.from(secret.key, 'utf8'));
  return `${secret.version}:${hmac.update(JSON.stringify(head)).update(kind).update(body).digest('base64url')}`;
}

describe('fingerprint format stays compatible with stored records', () => {
  const secrets: VersionedSecret[] = [
    { version: 1, key: 'sixteen-chars-ok' },
    { version: 2, key: 'k'.repeat(64) },
    { version: 3, key: `long-${'ü'.repeat(80)}` },
  ];
  const bodies = [
    '{"b":1,"a":[true,null,"x"]}',
    '{"amount":1000,"currency":"eur"}',
    `{"big":"${'y'.repeat(40_000)}"}`,
  ];

  for (const secret of secrets) {
    it(`JSON bodies, secret of ${Buffer.byteLength(secret.key)} bytes`, () => {
      for (const text of bodies) {
        const fp = createFingerprint(
          {
            method: 'POST',
            path: '/pay',
            query: 'a=1',
            contentType: 'Application/JSON; charset=utf-8',
            headers: [['X-Tenant', 'ä']],
            body: Buffer.from(text),
          },
          OPTIONS,
        );
        const head = ['POST', '/pay', 'a=1', 'application/json', 'x-tenant', 'ä'];
        assert.equal(fp.digest(secret), reference(secret, head, 'j', canonicalJson(text) as string));
      }
    });

    it(`raw bodies, secret of ${Buffer.byteLength(secret.key)} bytes`, () => {
      for (const bytes of [Buffer.from([0xff, 0, 1]), Buffer.alloc(0), Buffer.alloc(20_000, 7)]) {
        const fp = createFingerprint(
          { method: 'PATCH', path: '/x', query: '', contentType: 'text/plain', headers: [], body: bytes },
          OPTIONS,
        );
        assert.equal(fp.digest(secret), reference(secret, ['PATCH', '/x', '', 'text/plain'], 'r', bytes));
      }
    });
  }
});
