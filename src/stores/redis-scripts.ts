import { createHash } from 'node:crypto';

/*
 * The Lua scripts behind every store operation except a first claim (a plain `SET NX PX`, see
 * redis.ts). KEYS[1] is the record, one string in the format of redis-record.ts:
 *   2 <state> <generation> <waited> <leaseUntil> <createdAt> <completedAt> <fpBytes> <tokenBytes>\n<fp><token><response>
 * Times are epoch ms or `~N` (N ms before the key's expiry). Deadlines come from Redis's clock:
 * every write sets the TTL relatively (`PX`), and `PEXPIRETIME` turns offsets back into epoch ms
 * (Redis 7.0+); only the claim reads `TIME`, to judge a lease that may have lapsed. Each script
 * makes as few calls as it can (a call from Lua costs about as much as a whole small command):
 * a completion of a claim this store instance made, untouched since, is COMPLETE_CLAIMED
 * (PEXPIRETIME, then SET … GET, no parsing: the client built both values); any other is COMPLETE
 * (GET, PEXPIRETIME, SET and, only when a duplicate has been seen, PUBLISH). Numbers are turned
 * into text with string.format('%d'): Lua's own conversion goes through a float printf, which cost
 * more than the rest of a completion's Lua.
 * Redis 7 replicates script effects, not the script, so reading TIME before writing is allowed.
 */

/** Error code of a value this version cannot read; redis.ts turns it into a clear 503. */
export const FORMAT_ERROR = 'IDEMKIT_FORMAT';

// Reads and parses the record; `p` is where the fingerprint starts. Anything else (an older
// idemkit's hash answers WRONGTYPE to GET, which redis.ts reports the same way) is refused.
const READ = `local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local st, gen, w, lu, ca, co, fl, tl, p = string.match(v, '^2 (%S+) (%d+) ([01]) (%S+) (%S+) (%S+) (%d+) (%d+)\\n()')
if not p then return redis.error_reply('${FORMAT_ERROR} record is not in format 2') end
fl = tonumber(fl)
tl = tonumber(tl)`;

// Fencing: every write after the claim checks that this token still owns an in-progress record.
const OWNED = `${READ}
if st ~= 'in_progress' or string.sub(v, p + fl, p + fl + tl - 1) ~= ARGV[1] then return 0 end`;

// The next write moves the expiry, so offsets from the current one become epoch ms first.
const ABSOLUTE = `local ea = redis.call('PEXPIRETIME', KEYS[1])
if string.byte(lu) == 126 then lu = ea - tonumber(string.sub(lu, 2)) end
if string.byte(ca) == 126 then ca = ea - tonumber(string.sub(ca, 2)) end
if string.byte(co) == 126 then co = ea - tonumber(string.sub(co, 2)) end`;

/**
 * Settling wakes duplicates waiting in other processes (redis-settle.ts) by publishing the record
 * key on the settle channel it is given, but only when a duplicate claim marked the record
 * (`waited`): most requests have no duplicate, and their completion then publishes nothing.
 * An empty channel (Cluster, or notify off) never publishes.
 */
const publish = (argv: number) =>
  `if w == '1' and ARGV[${argv}] ~= '' then redis.call('PUBLISH', ARGV[${argv}], KEYS[1]) end`;

export interface RedisScript {
  name: string;
  source: string;
  sha: string;
}

function script(name: string, source: string): RedisScript {
  return Object.freeze({ name, source, sha: createHash('sha1').update(source).digest('hex') });
}

/**
 * claim(KEYS[1]; ARGV: fingerprint, token, leaseMs, retentionMs, mark waiters '1' or '')
 * → {1, generation[, 1 on a takeover]} when acquired, else {0, record value, expiresAt}.
 * Runs when the first claim's `SET NX` found a record. See the lease timeline above ClaimResult
 * in src/core/store.ts.
 */
export const CLAIM = script(
  'claim',
  `local v = redis.call('GET', KEYS[1])
local gen = 1
local takeover = false
if v then
  local st, g, w, lu, ca, co, fl, tl, p = string.match(v, '^2 (%S+) (%d+) ([01]) (%S+) (%S+) (%S+) (%d+) (%d+)\\n()')
  if not p then return redis.error_reply('${FORMAT_ERROR} record is not in format 2') end
  local ea = redis.call('PEXPIRETIME', KEYS[1])
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local leaseUntil = lu
  if string.byte(lu) == 126 then leaseUntil = ea - tonumber(string.sub(lu, 2)) end
  fl = tonumber(fl)
  -- a release tombstone is absent for a claim; its generation carries on below
  local takeable = st == 'released'
  -- any record past expiresAt (retention, or an abandoned claim's lease + orphan horizon)
    or ea <= now
  -- a crashed holder's lapsed lease, taken over only by the same request (fingerprint)
    or (st == 'in_progress' and tonumber(leaseUntil) <= now and string.sub(v, p, p + fl - 1) == ARGV[1])
  if not takeable then
    -- a live lease, another request's lapsed lease, or a result to replay: hand the record back,
    -- first marking a running one so that its settling publishes a wake-up for waiters
    if st == 'in_progress' and w == '0' and ARGV[5] == '1' then
      redis.call('SET', KEYS[1], '2 in_progress ' .. g .. ' 1 ' .. lu .. ' ' .. ca .. ' ' .. co .. ' ' .. fl .. ' ' .. tl .. '\\n' .. string.sub(v, p), 'KEEPTTL')
    end
    return {0, v, ea}
  end
  -- Past expiresAt the record counts as gone even if Redis has not dropped it yet (its expiry
  -- clock is frozen while a script runs, TIME is not), so generations restart at 1 as after the TTL.
  if ea > now then gen = tonumber(g) + 1 end
  -- flags a takeover of a lapsed lease (for the engine's takeover event)
  takeover = st == 'in_progress' and gen > 1
end
local ttl = tonumber(ARGV[3]) + tonumber(ARGV[4])
redis.call('SET', KEYS[1], '2 in_progress ' .. gen .. ' 0 ~' .. ARGV[4] .. ' ~' .. ttl .. ' - ' .. #ARGV[1] .. ' ' .. #ARGV[2] .. '\\n' .. ARGV[1] .. ARGV[2], 'PX', ttl)
if takeover then return {1, gen, 1} end
return {1, gen}`,
);

/** heartbeat(KEYS[1]; ARGV: token, leaseMs, retentionMs) → 1 renewed, 0 lease lost. */
export const HEARTBEAT = script(
  'heartbeat',
  `${OWNED}
${ABSOLUTE}
local ttl = tonumber(ARGV[2]) + tonumber(ARGV[3])
redis.call('SET', KEYS[1], '2 in_progress ' .. gen .. ' ' .. w .. ' ~' .. ARGV[3] .. ' ' .. ca .. ' - ' .. fl .. ' ' .. tl .. '\\n' .. string.sub(v, p), 'PX', ttl)
return 1`,
);

/**
 * complete(KEYS[1]; ARGV: token, encoded response, retentionMs, settle channel) → 1 stored, 0 fenced.
 * completedAt is retentionMs before the new expiry, i.e. Redis's clock now.
 */
export const COMPLETE = script(
  'complete',
  `${OWNED}
${ABSOLUTE}
redis.call('SET', KEYS[1], '2 completed ' .. gen .. ' 0 ' .. lu .. ' ' .. ca .. ' ~' .. ARGV[3] .. ' ' .. fl .. ' 0\\n' .. string.sub(v, p, p + fl - 1) .. ARGV[2], 'PX', ARGV[3])
${publish(4)}
return 1`,
);

/**
 * The completion's fast path (redis-claims.ts): complete(KEYS[1]; ARGV: the value our claim's
 * `SET NX PX` wrote, its retentionMs, its TTL, the completed record's tail ` ~<retentionMs>
 * <fpBytes> 0\n<fp><encoded response>`, retentionMs) → 1 stored, 0 no record, -1 the record is
 * no longer exactly what we wrote (run COMPLETE). An unchanged value proves everything COMPLETE
 * checks: in progress, owned by our token (a token is kept only while in progress), generation
 * 1, nobody waiting (so nothing to publish), leaseUntil and createdAt the claim's offsets from
 * the expiry. The record written is byte for byte the one COMPLETE would write.
 * The write and the read are one `SET … GET` (a call from Lua costs about as much as a small
 * command); when what it replaced is not our claim, the old value goes back with its expiry (or
 * the key is deleted again) before the script returns, so no other client ever sees the write.
 */
export const COMPLETE_CLAIMED = script(
  'complete',
  `local ea = redis.call('PEXPIRETIME', KEYS[1])
local v = redis.call('SET', KEYS[1], string.format('2 completed 1 0 %d %d', ea - ARGV[2], ea - ARGV[3]) .. ARGV[4], 'PX', ARGV[5], 'GET')
if v == ARGV[1] then return 1 end
if not v then
  redis.call('DEL', KEYS[1])
  return 0
end
if ea > 0 then redis.call('SET', KEYS[1], v, 'PXAT', ea) else redis.call('SET', KEYS[1], v) end
return -1`,
);

/** release(KEYS[1]; ARGV: token, retentionMs, settle channel) → 1 tombstone left (generation kept), 0 fenced. */
export const RELEASE = script(
  'release',
  `${OWNED}
${ABSOLUTE}
redis.call('SET', KEYS[1], '2 released ' .. gen .. ' 0 ' .. lu .. ' ' .. ca .. ' - ' .. fl .. ' 0\\n' .. string.sub(v, p, p + fl - 1), 'PX', ARGV[2])
${publish(3)}
return 1`,
);

/** markUncertain(KEYS[1]; ARGV: token, retentionMs, settle channel) → 1 held as uncertain, 0 fenced. */
export const MARK_UNCERTAIN = script(
  'markUncertain',
  `${OWNED}
${ABSOLUTE}
redis.call('SET', KEYS[1], '2 uncertain ' .. gen .. ' 0 ' .. lu .. ' ' .. ca .. ' ~' .. ARGV[2] .. ' ' .. fl .. ' 0\\n' .. string.sub(v, p, p + fl - 1), 'PX', ARGV[2])
${publish(3)}
return 1`,
);

/** get(KEYS[1]) → {record value or nil, expiresAt}: one atomic read for `get()`. */
export const READ_RECORD = script(
  'get',
  `return {redis.call('GET', KEYS[1]), redis.call('PEXPIRETIME', KEYS[1])}`,
);
