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
 * The store key: SHA-256 over the scope fields, hex (64 bytes). The fields are hashed as a JSON
 * array, an unambiguous encoding (`("ab", "c")` and `("a", "bc")` stay apart) that costs one
 * hash update; hashing keeps client keys, which may be sensitive, out of the store and bounds
 * the key size whatever the client sent.
 */
export function scopeHash(scope: Scope): string {
  const fields = JSON.stringify([scope.tenant, scope.principal, scope.method, scope.path, scope.key]);
  return createHash('sha256').update(fields).digest('hex');
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
