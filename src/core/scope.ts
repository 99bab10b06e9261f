import { createHash } from 'node:crypto';

/** The fields a record belongs to (reliability.md §2.1). Two scopes never share a record. */
export interface Scope {
  tenant: string;
  principal: string;
  method: string;
  path: string;
  key: string;
}

/**
 * The store key: SHA-256 over the length-prefixed scope fields, hex (64 bytes). Length prefixes
 * keep `("ab", "c")` and `("a", "bc")` apart; hashing keeps client keys, which may be sensitive,
 * out of the store and bounds the key size whatever the client sent.
 */
export function scopeHash(scope: Scope): string {
  const hash = createHash('sha256');
  for (const field of [scope.tenant, scope.principal, scope.method, scope.path, scope.key]) {
    const bytes = Buffer.from(field, 'utf8');
    const length = Buffer.allocUnsafe(4);
    length.writeUInt32BE(bytes.length, 0);
    hash.update(length).update(bytes);
  }
  return hash.digest('hex');
}

/**
 * The key a handler (or the gateway) passes to foreign systems. A pure function of the scope
 * hash, so it is the same on every retry and after a lease takeover, and reveals nothing of the
 * client key or the principal.
 */
export function downstreamKeyFor(storeKey: string): string {
  return `idemkit-${createHash('sha256').update(`downstream:${storeKey}`).digest('base64url').slice(0, 32)}`;
}

/** The default principal: a SHA-256 of the Authorization header, or '' (anonymous). */
export function hashCredential(value: string | undefined): string {
  if (!value) return '';
  return createHash('sha256').update(value).digest('base64url');
}
