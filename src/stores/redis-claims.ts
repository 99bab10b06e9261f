/*
 * The claims this store instance made with a plain `SET NX PX` and has not settled yet, by owner
 * token. Such a claim wrote a value the client built itself (claimValue in redis-record.ts), so
 * while nobody has touched the record since, the completion knows it byte for byte: the
 * COMPLETE_CLAIMED script then only checks that the record is still exactly that value and writes
 * the completed record the client prepared, with no parsing in Lua. Anything else (a duplicate
 * marked the record, a heartbeat or takeover rewrote it, another process claimed it, or this map
 * forgot it) makes that script answer "not as claimed", and the general COMPLETE decides.
 * Bounded: at most MAX_CLAIMS are kept (the oldest half is forgotten at once); a forgotten claim
 * only loses the faster path.
 */

const MAX_CLAIMS = 10_000;

export interface RedisClaim {
  key: string;
  /** The value the claim's `SET NX PX` wrote. */
  value: string;
  fingerprint: string;
  /** The claim's retentionMs and TTL (leaseMs + retentionMs): its times are offsets from expiry. */
  retentionMs: string;
  ttlMs: string;
}

export interface RedisClaims {
  add(token: string, claim: RedisClaim): void;
  /** Returns and forgets the claim `token` made on `key`, if this instance still knows it. */
  take(token: string, key: string): RedisClaim | undefined;
  forget(token: string): void;
}

export function redisClaims(max = MAX_CLAIMS): RedisClaims {
  // Two generations: when the young one is full it becomes the old one and the previous old one
  // is dropped, so at most `max` claims are kept and nothing is ever scanned.
  let young = new Map<string, RedisClaim>();
  let old = new Map<string, RedisClaim>();
  const half = Math.max(1, Math.floor(max / 2));
  return {
    add(token, claim) {
      if (young.size >= half) {
        old = young;
        young = new Map();
      }
      old.delete(token);
      young.set(token, claim);
    },
    take(token, key) {
      const claim = young.get(token) ?? old.get(token);
      if (claim === undefined) return undefined;
      young.delete(token);
      old.delete(token);
      return claim.key === key ? claim : undefined;
    },
    forget(token) {
      young.delete(token);
      old.delete(token);
    },
  };
}
