import { IdempotencyConfigError, StoreMisconfiguredError, StoreUnavailableError } from '../core/errors.js';
import { type ClaimResult, type IdempotencyStore, RecordState, type StoredRecord } from '../core/store.js';
import { withTimeout } from '../core/store-call.js';
import { redisClaims } from './redis-claims.js';
import { detectClient, type RedisArgument, type RedisClientLike } from './redis-clients.js';
import { claimValue, completedTail, formatError, parseRecord } from './redis-record.js';
import {
  CLAIM,
  COMPLETE,
  COMPLETE_CLAIMED,
  FORMAT_ERROR,
  HEARTBEAT,
  MARK_UNCERTAIN,
  READ_RECORD,
  RELEASE,
  type RedisScript,
} from './redis-scripts.js';
import { type RedisSettleChannel, redisSettleChannel } from './redis-settle.js';
import { encodeResponse } from './response-codec.js';

export type {
  IoRedisClusterLike,
  IoRedisLike,
  NodeRedisClientLike,
  NodeRedisClusterLike,
  RedisClientLike,
} from './redis-clients.js';

export interface RedisStoreOptions {
  /**
   * The app's connected client: node-redis 5 (`createClient`, `createCluster`) or ioredis 5
   * (`Redis`, `Cluster`). The store never connects or quits it. While Redis is down, clients queue
   * commands by default; the store's timer answers anyway, but a queued claim may still run on
   * reconnect (the store then releases it). Prefer `disableOfflineQueue: true` (node-redis) or
   * `enableOfflineQueue: false` with `maxRetriesPerRequest: 1` (ioredis), and an `'error'` listener.
   */
  client: RedisClientLike;
  /** Prepended to every record key; must not contain `{` or `}`. @default 'idemkit:' */
  prefix?: string;
  /** Bound on every call, whatever the client's own settings. @default 2_000 */
  commandTimeoutMs?: number;
  /**
   * What `check()` does when `maxmemory-policy` is not `noeviction` (eviction would silently drop
   * records, so a retry would run twice): throw `StoreMisconfiguredError`, or warn.
   * @default 'refuse'
   */
  onUnsafeConfig?: 'refuse' | 'warn';
  /**
   * `WAIT replicas timeoutMs` after a claim and after a completion, for replicated setups. Best
   * effort (Redis may still lose acknowledged writes on failover): a shortfall is warned, not thrown.
   * @default undefined (no WAIT)
   */
  wait?: { replicas: number; timeoutMs: number };
  /** Receives warnings (unsafe config in warn mode, CONFIG forbidden, WAIT shortfall). @default process.emitWarning */
  onWarning?: (message: string) => void;
  /**
   * Wakes duplicates waiting in other processes (`wait` mode) as soon as the first request
   * settles: the settling scripts PUBLISH the record key on `<prefix>settled` (only for a record a
   * duplicate claim found in progress: a request nobody waits for publishes nothing), and the first wait
   * in a process subscribes on one dedicated connection (`client.duplicate()`, closed by
   * `close()`). Standalone Redis only: a Cluster keeps polling (PUBLISH would be broadcast to
   * every node, and sharded SPUBLISH would need a subscription per slot).
   * @default true
   */
  notify?: boolean;
}

/**
 * A store on Redis (standalone or Cluster): a first claim is one `SET NX PX`, every other
 * operation one Lua script; deadlines from Redis's clock; records are strings that Redis expires at
 * `expiresAt` (so `sweep` has nothing to do). Record format: redis-record.ts.
 * @example
 * const idem = createIdempotency({ store: redisStore({ client }), secret: process.env.IDEMKIT_SECRET })
 */
export function redisStore(options: RedisStoreOptions): IdempotencyStore {
  const config = Object.freeze({
    sender: detectClient(options.client),
    prefix: options.prefix ?? 'idemkit:',
    commandTimeoutMs: options.commandTimeoutMs ?? 2_000,
    onUnsafeConfig: options.onUnsafeConfig ?? 'refuse',
    wait: options.wait === undefined ? undefined : Object.freeze({ ...options.wait }),
    onWarning: options.onWarning ?? ((m: string) => process.emitWarning(m, 'IdemkitWarning')),
  });
  if (/[{}]/.test(config.prefix)) {
    throw new IdempotencyConfigError('redisStore: prefix must not contain { or } (they pick the hash slot)');
  }
  if (!Number.isInteger(config.commandTimeoutMs) || config.commandTimeoutMs < 1) {
    throw new IdempotencyConfigError('redisStore: commandTimeoutMs must be a positive integer');
  }
  if (!['refuse', 'warn'].includes(config.onUnsafeConfig)) {
    throw new IdempotencyConfigError(`redisStore: onUnsafeConfig must be 'refuse' or 'warn'`);
  }
  const { sender, prefix, commandTimeoutMs, wait, onWarning } = config;
  let lastWaitWarning = Number.NEGATIVE_INFINITY;
  const standalone = sender.kind === 'node-redis' || sender.kind === 'ioredis';
  // The settling scripts' last argument: '' publishes nothing.
  const settleChannel = options.notify !== false && standalone ? `${prefix}settled` : '';
  const settle: RedisSettleChannel | undefined = settleChannel
    ? redisSettleChannel(options.client, settleChannel, commandTimeoutMs)
    : undefined;

  // Claims made here by SET NX and not settled yet: their completion skips the parsing.
  const claims = redisClaims();

  // The braces make the whole engine key the hash tag: one slot per record in a Cluster.
  const recordKey = (key: string) => `${prefix}{${key}}`;

  function command(
    op: string,
    key: string,
    args: RedisArgument[],
    onLate?: (reply: unknown) => void,
    timeoutMs = commandTimeoutMs,
  ) {
    const call = () =>
      sender.send(key, args).catch((error: unknown) => Promise.reject(failed(op, key, error)));
    return withTimeout(`redis ${op}`, call, timeoutMs, onLate);
  }

  // EVALSHA first; a node that lost its script cache (restart, failover, SCRIPT FLUSH, a new
  // Cluster primary) answers NOSCRIPT, and EVAL both runs and caches the script there.
  async function evalScript(
    s: RedisScript,
    key: string,
    args: RedisArgument[],
    onLate?: (r: unknown) => void,
    timeoutMs = commandTimeoutMs,
  ) {
    const rk = recordKey(key);
    try {
      return await command(s.name, rk, ['EVALSHA', s.sha, '1', rk, ...args], onLate, timeoutMs);
    } catch (error) {
      if (!/NOSCRIPT/.test(messageOf((error as Error).cause))) throw error;
      return command(s.name, rk, ['EVAL', s.source, '1', rk, ...args], onLate, timeoutMs);
    }
  }

  async function waitForReplicas(key: string): Promise<void> {
    if (!wait) return;
    const acked = await command('wait', recordKey(key), [
      'WAIT',
      String(wait.replicas),
      String(wait.timeoutMs),
    ]);
    if (typeof acked === 'number' && acked < wait.replicas && Date.now() - lastWaitWarning > 60_000) {
      lastWaitWarning = Date.now();
      onWarning(
        `idemkit redis: WAIT reached ${acked} of ${wait.replicas} replicas within ${wait.timeoutMs} ms`,
      );
    }
  }

  async function owned(s: RedisScript, key: string, args: RedisArgument[]): Promise<boolean> {
    return (await evalScript(s, key, args)) === 1;
  }

  /** The scripts read PEXPIRETIME (Redis 7.0): an older server would fail every write with 503. */
  async function checkVersion(): Promise<void> {
    let replies: unknown[];
    try {
      replies = await withTimeout(
        'redis check',
        () => sender.eachPrimary(['INFO', 'server']),
        commandTimeoutMs,
      );
    } catch (error) {
      if (!/^(ERR|NOPERM)\b/.test(messageOf(error))) throw unavailable('check', error);
      onWarning(
        `idemkit redis: cannot read the server version (${messageOf(error)}); idemkit needs Redis 7.0 or later`,
      );
      return;
    }
    for (const reply of replies) {
      const version = /redis_version:(\d+)\.(\d+)/.exec(String(reply));
      if (version && Number(version[1]) < 7) {
        throw new StoreMisconfiguredError(
          `idemkit redis: the server is Redis ${version[1]}.${version[2]}; idemkit needs Redis 7.0 or later (PEXPIRETIME)`,
        );
      }
    }
  }

  return {
    name: 'redis',

    // See the lease timeline above ClaimResult in types.ts; the predicate is in the CLAIM script.
    async claim(request): Promise<ClaimResult> {
      // The whole claim answers within commandTimeoutMs, even when it takes two round trips.
      const deadline = Date.now() + commandTimeoutMs;
      // A claim that lands after our timeout (a queued command on reconnect) holds the key for a
      // caller that already got a 503: give it back at once.
      const releaseLate = (granted: boolean) => {
        if (!granted) return;
        const release = [request.token, String(request.retentionMs), settleChannel];
        evalScript(RELEASE, request.key, release).catch(() => {});
      };
      // Most keys are new: one plain SET NX, no script. Its TTL is the lease plus the orphan
      // horizon, counted by Redis's clock (the record's times are offsets from that expiry).
      const rk = recordKey(request.key);
      const ttlMs = request.leaseMs + request.retentionMs;
      const value = claimValue(request.fingerprint, request.token, request.retentionMs, ttlMs);
      const first = await command('claim', rk, ['SET', rk, value, 'NX', 'PX', String(ttlMs)], (reply) =>
        releaseLate(reply !== null && reply !== undefined),
      );
      if (first !== null && first !== undefined) {
        claims.add(request.token, {
          key: request.key,
          value,
          fingerprint: request.fingerprint,
          retentionMs: String(request.retentionMs),
          ttlMs: String(ttlMs),
        });
        await waitForReplicas(request.key).catch((error: unknown) => {
          claims.forget(request.token);
          throw error;
        });
        return { outcome: 'acquired', generation: 1 };
      }
      // A record exists: the script decides (tombstone, expiry, lapsed lease) and reads it back.
      const args = [
        request.fingerprint,
        request.token,
        String(request.leaseMs),
        String(request.retentionMs),
        settleChannel ? '1' : '',
      ];
      const reply = await evalScript(
        CLAIM,
        request.key,
        args,
        (late) => releaseLate(Array.isArray(late) && late[0] === 1),
        Math.max(1, deadline - Date.now()),
      );
      if (!Array.isArray(reply)) throw unexpected('claim', reply);
      if (reply[0] === 1) {
        await waitForReplicas(request.key);
        const generation = toInt(reply[1]);
        return reply[2] === undefined
          ? { outcome: 'acquired', generation }
          : { outcome: 'acquired', generation, takeover: true };
      }
      if (!Buffer.isBuffer(reply[1])) throw unexpected('claim', reply);
      const record = parseRecord(request.key, reply[1], toInt(reply[2]));
      return { outcome: record.state === RecordState.InProgress ? 'in_progress' : 'completed', record };
    },

    // A heartbeat rewrites the record (and so does any settling): the claim's value is gone.
    heartbeat(r) {
      claims.forget(r.token);
      return owned(HEARTBEAT, r.key, [r.token, String(r.leaseMs), String(r.retentionMs)]);
    },

    async complete(r): Promise<boolean> {
      const encoded = encodeResponse(r.response);
      const retentionMs = String(r.retentionMs);
      const claimed = claims.take(r.token, r.key);
      // 1 stored, 0 no record; -1 (the record changed since our claim) falls through to COMPLETE.
      const fast = claimed
        ? await evalScript(COMPLETE_CLAIMED, r.key, [
            claimed.value,
            claimed.retentionMs,
            claimed.ttlMs,
            completedTail(claimed.fingerprint, r.retentionMs, encoded),
            retentionMs,
          ])
        : -1;
      const done =
        fast === -1
          ? await owned(COMPLETE, r.key, [r.token, Buffer.from(encoded), retentionMs, settleChannel])
          : fast === 1;
      if (done) await waitForReplicas(r.key);
      return done;
    },

    release(r) {
      claims.forget(r.token);
      return owned(RELEASE, r.key, [r.token, String(r.retentionMs), settleChannel]);
    },
    markUncertain(r) {
      claims.forget(r.token);
      return owned(MARK_UNCERTAIN, r.key, [r.token, String(r.retentionMs), settleChannel]);
    },

    // The scripts publish the record key; waiters are registered under it too.
    ...(settle
      ? { onSettled: (key: string, listener: () => void) => settle.onSettled(recordKey(key), listener) }
      : {}),

    async get(key: string): Promise<StoredRecord | undefined> {
      const reply = await evalScript(READ_RECORD, key, []);
      if (!Array.isArray(reply)) throw unexpected('get', reply);
      const [value, expiresAt] = reply;
      if (value === null || value === undefined) return undefined;
      if (!Buffer.isBuffer(value)) throw unexpected('get', reply);
      return parseRecord(key, value, toInt(expiresAt));
    },

    async delete(key: string): Promise<boolean> {
      const rk = recordKey(key);
      return (await command('delete', rk, ['DEL', rk])) === 1;
    },

    // Every write sets PEXPIREAT to expiresAt, so Redis deletes expired records itself.
    async sweep(): Promise<number> {
      return 0;
    },

    async check(): Promise<void> {
      await checkVersion();
      let replies: unknown[];
      try {
        replies = await withTimeout(
          'redis check',
          () => sender.eachPrimary(['CONFIG', 'GET', 'maxmemory-policy']),
          commandTimeoutMs,
        );
      } catch (error) {
        // Only a refusal by the server (managed Redis often forbids CONFIG) is a warning; we cannot
        // prove the policy then, so say so and go on. A Redis that does not answer is unavailable.
        if (!/^(ERR|NOPERM)\b/.test(messageOf(error))) throw unavailable('check', error);
        onWarning(
          `idemkit redis: cannot read maxmemory-policy (${messageOf(error)}); make sure it is noeviction`,
        );
        return;
      }
      for (const reply of replies) {
        const policy = configValue(reply, 'maxmemory-policy');
        if (policy === 'noeviction') continue;
        const message = `idemkit redis: maxmemory-policy is ${policy ?? 'unknown'}, not noeviction: Redis may evict records under memory pressure and a retry would run again`;
        if (config.onUnsafeConfig === 'refuse') throw new StoreMisconfiguredError(message);
        onWarning(message);
        return;
      }
    },

    // The client is the app's; only the subscriber connection (if one was made) is ours.
    async close(): Promise<void> {
      settle?.close();
    },
  };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function unavailable(op: string, error: unknown): StoreUnavailableError {
  return new StoreUnavailableError(`redis ${op} failed: ${messageOf(error)}`, { cause: error });
}

/** A record of another format (an older idemkit's hash answers WRONGTYPE) is refused clearly. */
function failed(op: string, recordKey: string, error: unknown): StoreUnavailableError {
  const message = messageOf(error);
  if (message.includes(FORMAT_ERROR) || message.includes('WRONGTYPE')) {
    return Object.assign(formatError(recordKey), { cause: error });
  }
  return unavailable(op, error);
}

function unexpected(op: string, reply: unknown): StoreUnavailableError {
  return new StoreUnavailableError(`redis ${op} returned an unexpected reply: ${String(reply).slice(0, 80)}`);
}

function text(value: unknown): string | undefined {
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  return undefined;
}

function toInt(value: unknown): number {
  const n = Number(text(value));
  if (!Number.isSafeInteger(n))
    throw new StoreUnavailableError(`redis returned a bad integer: ${String(value)}`);
  return n;
}

/** CONFIG GET answers a flat array (RESP2) or a map (RESP3: an object or a Map). */
function configValue(reply: unknown, name: string): string | undefined {
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) if (text(reply[i]) === name) return text(reply[i + 1]);
    return undefined;
  }
  if (reply instanceof Map) {
    for (const [k, v] of reply) if (text(k) === name) return text(v);
    return undefined;
  }
  if (typeof reply === 'object' && reply !== null) return text((reply as Record<string, unknown>)[name]);
  return undefined;
}
