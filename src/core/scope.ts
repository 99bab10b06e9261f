import { hash } from 'node:crypto';

/** The fields a record belongs to (docs/guarantees.md). Two scopes never share a record. */
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
 * hash; hashing keeps client keys, which may be sensitive, out of the store and bounds the key
 * size whatever the client sent. `crypto.hash` is the one-shot form: no Hash object per request.
 */
export function scopeHash(scope: Scope): string {
  const fields = JSON.stringify([scope.tenant, scope.principal, scope.method, scope.path, scope.key]);
  return hash('sha256', fields, 'hex');
}

/** The fields of an operation call's record (`idem.run`). */
export interface OperationScope {
  tenant: string;
  principal: string;
  operation: string;
  key: string;
}

/**
 * The store key of an operation call. Also a JSON array, one field longer than the HTTP scope's
 * and led by a fixed marker, so no operation call and no HTTP request can ever share a record,
 * and no two field splits (`('shop:eu', 'x')` and `('shop', 'eu:x')`) meet.
 */
export function operationScopeHash(scope: OperationScope): string {
  const fields = JSON.stringify([
    'idemkit:operation',
    scope.tenant,
    scope.principal,
    scope.operation,
    scope.key,
    '',
  ]);
  return hash('sha256', fields, 'hex');
}

/**
 * The key a handler (or the gateway) passes to foreign systems. A pure function of the scope
 * hash, so it is the same on every retry and after a lease takeover, and reveals nothing of the
 * client key or the principal.
 */
export function downstreamKeyFor(storeKey: string): string {
  return `idemkit-${hash('sha256', `downstream:${storeKey}`, 'base64url').slice(0, 32)}`;
}

/**
 * A small bounded memo of a string → digest function. A caller sends the same credential on
 * every request, so its hash is computed once, not per request. When full, the oldest entry
 * goes (insertion order): a hot entry that is evicted is simply hashed again. Long inputs are
 * not kept, so the memo's memory stays bounded by entries × MAX_MEMO_INPUT.
 */
export class DigestMemo {
  private readonly entries = new Map<string, string>();
  private readonly digestOf: (value: string) => string;
  private readonly capacity: number;

  constructor(digestOf: (value: string) => string, capacity = 1_024) {
    this.digestOf = digestOf;
    this.capacity = capacity;
  }

  get(value: string): string {
    let digest = this.entries.get(value);
    if (digest !== undefined) return digest;
    digest = this.digestOf(value);
    if (value.length <= MAX_MEMO_INPUT) {
      if (this.entries.size >= this.capacity) this.entries.delete(this.entries.keys().next().value as string);
      this.entries.set(value, digest);
    }
    return digest;
  }
}

const MAX_MEMO_INPUT = 1_024;

const credentialHashes = new DigestMemo((value) => hash('sha256', value, 'base64url'));

/** The default principal: a SHA-256 of the Authorization header, or '' (anonymous). */
export function hashCredential(value: string | undefined): string {
  if (!value) return '';
  return credentialHashes.get(value);
}

const untenantedSlots = new DigestMemo((principal) => `0:${principal}`);

/**
 * A caller's in-flight slot: tenant + principal, length-prefixed so no two splits meet. Without
 * a tenant (the usual case) the same string object comes back for the same principal, so the
 * maps keyed by it (in-flight counts, store partitions) reuse its cached hash instead of
 * flattening and hashing a fresh concatenation on every request.
 */
export function slotOf(tenant: string, principal: string): string {
  return tenant === '' ? untenantedSlots.get(principal) : `${tenant.length}:${tenant}${principal}`;
}
