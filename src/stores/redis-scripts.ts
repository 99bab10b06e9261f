import { createHash } from 'node:crypto';

/*
 * One Lua script per store operation. KEYS[1] is the record: a hash with the fields
 *   st (state) · fp (fingerprint) · gen (generation) · tok (owner token, in_progress only)
 *   lu (leaseUntil) · ea (expiresAt) · ca (createdAt) · co (completedAt) · resp (encoded response)
 * Times are epoch ms from Redis `TIME`, read inside the script: time is frozen while a script
 * runs, so the key cannot expire half-way, and app-server clocks never decide a lease. Every
 * write sets PEXPIREAT to expiresAt, so Redis itself removes what a sweep would.
 * Redis 7 replicates script effects, not the script, so calling TIME before writing is allowed.
 */

const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

// Fencing: every write after the claim checks that this token still owns an in-progress record.
const OWNED = `local o = redis.call('HMGET', KEYS[1], 'st', 'tok')
if o[1] ~= 'in_progress' or o[2] ~= ARGV[1] then return 0 end`;

/**
 * Settling scripts end by publishing the record key on the settle channel they are given (an
 * empty channel: no message), which wakes duplicates waiting in other processes (redis-settle.ts).
 * PUBLISH from a script reaches every subscriber of a standalone server; a Cluster passes ''.
 */
const publish = (argv: number) =>
  `if ARGV[${argv}] and ARGV[${argv}] ~= '' then redis.call('PUBLISH', ARGV[${argv}], KEYS[1]) end`;

export interface RedisScript {
  name: string;
  source: string;
  sha: string;
}

function script(name: string, source: string): RedisScript {
  return Object.freeze({ name, source, sha: createHash('sha1').update(source).digest('hex') });
}

/**
 * claim(KEYS[1]; ARGV: fingerprint, token, leaseMs, retentionMs)
 * → {1, generation[, 1 on a takeover]} when acquired, else {0, st, fp, gen, lu, ea, ca, co, resp}.
 * See the lease timeline above ClaimResult in src/stores/types.ts.
 */
export const CLAIM = script(
  'claim',
  `${NOW}
local r = redis.call('HMGET', KEYS[1], 'st', 'fp', 'gen', 'lu', 'ea', 'ca', 'co')
local st = r[1]
if st then
  -- a release tombstone is absent for a claim; its generation carries on below
  local takeable = st == 'released'
  -- any record past expiresAt (retention, or an abandoned claim's lease + orphan horizon)
    or tonumber(r[5]) <= now
  -- a crashed holder's lapsed lease, taken over only by the same request (fingerprint)
    or (st == 'in_progress' and tonumber(r[4]) <= now and r[2] == ARGV[1])
  if not takeable then
    -- a live lease, another request's lapsed lease, or a result to replay: hand the record back
    local resp = false
    if st == 'completed' then resp = redis.call('HGET', KEYS[1], 'resp') end
    return {0, st, r[2], r[3], r[4], r[5], r[6], r[7], resp}
  end
end
-- Past expiresAt the record counts as gone even if Redis has not dropped it yet (its expiry
-- clock is cached per command, TIME is not), so generations restart at 1 as after the TTL.
local gen = 1
if st and tonumber(r[5]) > now then gen = tonumber(r[3]) + 1 end
local lu = now + tonumber(ARGV[3])
local ea = lu + tonumber(ARGV[4])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'st', 'in_progress', 'fp', ARGV[1], 'tok', ARGV[2], 'gen', gen,
  'lu', lu, 'ea', ea, 'ca', now)
redis.call('PEXPIREAT', KEYS[1], ea)
-- the third element flags a takeover of a lapsed lease (for the engine's takeover event)
if st == 'in_progress' and gen > 1 then return {1, gen, 1} end
return {1, gen}`,
);

/** heartbeat(KEYS[1]; ARGV: token, leaseMs, retentionMs) → 1 renewed, 0 lease lost. */
export const HEARTBEAT = script(
  'heartbeat',
  `${OWNED}
${NOW}
local lu = now + tonumber(ARGV[2])
local ea = lu + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'lu', lu, 'ea', ea)
redis.call('PEXPIREAT', KEYS[1], ea)
return 1`,
);

/** complete(KEYS[1]; ARGV: token, encoded response, retentionMs, settle channel) → 1 stored, 0 fenced. */
export const COMPLETE = script(
  'complete',
  `${OWNED}
${NOW}
local ea = now + tonumber(ARGV[3])
redis.call('HDEL', KEYS[1], 'tok')
redis.call('HSET', KEYS[1], 'st', 'completed', 'co', now, 'ea', ea, 'resp', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ea)
${publish(4)}
return 1`,
);

/** release(KEYS[1]; ARGV: token, retentionMs, settle channel) → 1 tombstone left (generation kept), 0 fenced. */
export const RELEASE = script(
  'release',
  `${OWNED}
${NOW}
local ea = now + tonumber(ARGV[2])
redis.call('HDEL', KEYS[1], 'tok')
redis.call('HSET', KEYS[1], 'st', 'released', 'ea', ea)
redis.call('PEXPIREAT', KEYS[1], ea)
${publish(3)}
return 1`,
);

/** markUncertain(KEYS[1]; ARGV: token, retentionMs, settle channel) → 1 held as uncertain, 0 fenced. */
export const MARK_UNCERTAIN = script(
  'markUncertain',
  `${OWNED}
${NOW}
local ea = now + tonumber(ARGV[2])
redis.call('HDEL', KEYS[1], 'tok')
redis.call('HSET', KEYS[1], 'st', 'uncertain', 'co', now, 'ea', ea)
redis.call('PEXPIREAT', KEYS[1], ea)
${publish(3)}
return 1`,
);

/** The fields `get()` reads with a plain HMGET (no script: one read needs no atomicity). */
export const RECORD_FIELDS = ['st', 'fp', 'gen', 'lu', 'ea', 'ca', 'co', 'resp'] as const;
