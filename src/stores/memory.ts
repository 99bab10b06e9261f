import { randomBytes } from 'node:crypto';
import { systemClock } from '../core/clock.js';
import { IdempotencyConfigError, StoreUnavailableError } from '../core/errors.js';
import {
  type ClaimRequest,
  type ClaimResult,
  type Clock,
  type CompleteRequest,
  type HeartbeatRequest,
  type IdempotencyStore,
  type MarkUncertainRequest,
  RecordState,
  type ReleaseRequest,
  type StoredRecord,
} from './types.js';

export interface MemoryStoreOptions {
  /**
   * Live records kept at most. At the cap, new claims are refused (503 `store-unavailable`)
   * rather than evicting a record that may still be needed for a replay.
   * @default 100_000
   */
  maxEntries?: number;
  /** Store time source. @default Date.now */
  clock?: Clock;
  /**
   * Called once with a warning that this store is single-process.
   * @default process.emitWarning
   */
  onWarning?: (message: string) => void;
}

interface MemoryRecord extends StoredRecord {
  token: string | null;
}

/** How many of the oldest records each new claim inspects, so expired ones go without a timer. */
const LAZY_SWEEP_PER_CLAIM = 2;
/**
 * How many of the oldest records a claim inspects when the store is full. Bounded, so a flood of
 * claims against a full store stays O(1) each; the sweeper timer does the thorough pass.
 */
const FULL_SWEEP_PER_CLAIM = 64;

/**
 * An in-process store: a `Map`, with check-and-set and no `await` in between. Only for one
 * process: two processes with memory stores do not see each other's claims.
 * @example
 * const idem = createIdempotency({ store: memoryStore() })
 */
export function memoryStore(options: MemoryStoreOptions = {}): IdempotencyStore {
  const maxEntries = options.maxEntries ?? 100_000;
  if (!Number.isInteger(maxEntries) || maxEntries < 1) {
    throw new IdempotencyConfigError(`memoryStore: maxEntries must be a positive integer, got ${maxEntries}`);
  }
  const now = options.clock ?? systemClock;
  const records = new Map<string, MemoryRecord>();
  const secret = randomBytes(32).toString('base64url');
  (options.onWarning ?? ((m: string) => process.emitWarning(m, 'IdemkitWarning')))(
    'idemkit memoryStore keeps records in this process only: run one process, or use the SQLite, PostgreSQL or Redis store',
  );

  // Map order is insertion order; writes that end a lease re-insert the record, so the oldest
  // entries are roughly the ones that expire first.
  function reinsert(record: MemoryRecord): void {
    records.delete(record.key);
    records.set(record.key, record);
  }

  function sweepOldest(count: number, at: number): void {
    let seen = 0;
    for (const record of records.values()) {
      if (seen++ >= count) return;
      if (record.expiresAt <= at) records.delete(record.key);
    }
  }

  function owned(key: string, token: string): MemoryRecord | undefined {
    const record = records.get(key);
    return record && record.state === RecordState.InProgress && record.token === token ? record : undefined;
  }

  // A copy, so a caller that mutates what it got cannot change later replays.
  function snapshot(record: MemoryRecord): StoredRecord {
    const { token: _token, response, ...rest } = record;
    if (!response) return rest;
    return {
      ...rest,
      response: {
        ...response,
        headers: response.headers.map(([n, v]) => [n, v]),
        body: Uint8Array.from(response.body),
      },
    };
  }

  return {
    name: 'memory',

    async claim(request: ClaimRequest): Promise<ClaimResult> {
      const at = now();
      const existing = records.get(request.key);
      if (existing) {
        const takeable =
          existing.state === RecordState.Released ||
          existing.expiresAt <= at ||
          (existing.state === RecordState.InProgress &&
            existing.leaseUntil <= at &&
            existing.fingerprint === request.fingerprint);
        if (!takeable) {
          const outcome = existing.state === RecordState.InProgress ? 'in_progress' : 'completed';
          return { outcome, record: snapshot(existing) };
        }
      } else {
        sweepOldest(LAZY_SWEEP_PER_CLAIM, at);
        if (records.size >= maxEntries) {
          sweepOldest(FULL_SWEEP_PER_CLAIM, at);
          if (records.size >= maxEntries) {
            throw new StoreUnavailableError(`memory store is full (${maxEntries} live records)`);
          }
        }
      }
      const generation = (existing?.generation ?? 0) + 1;
      const leaseUntil = at + request.leaseMs;
      const record: MemoryRecord = {
        key: request.key,
        state: RecordState.InProgress,
        fingerprint: request.fingerprint,
        generation,
        leaseUntil,
        expiresAt: leaseUntil + request.retentionMs,
        createdAt: at,
        completedAt: null,
        token: request.token,
      };
      reinsert(record);
      return existing?.state === RecordState.InProgress
        ? { outcome: 'acquired', generation, takeover: true }
        : { outcome: 'acquired', generation };
    },

    async heartbeat(request: HeartbeatRequest): Promise<boolean> {
      const record = owned(request.key, request.token);
      if (!record) return false;
      record.leaseUntil = now() + request.leaseMs;
      record.expiresAt = record.leaseUntil + request.retentionMs;
      return true;
    },

    async complete(request: CompleteRequest): Promise<boolean> {
      const record = owned(request.key, request.token);
      if (!record) return false;
      const at = now();
      const { body, ...rest } = request.response;
      // Copy the body: the caller's buffer may be reused after we return.
      Object.assign(record, {
        state: RecordState.Completed,
        completedAt: at,
        expiresAt: at + request.retentionMs,
        response: { ...rest, headers: rest.headers.map(([n, v]) => [n, v]), body: Uint8Array.from(body) },
        token: null,
      });
      reinsert(record);
      return true;
    },

    async release(request: ReleaseRequest): Promise<boolean> {
      const record = owned(request.key, request.token);
      if (!record) return false;
      Object.assign(record, {
        state: RecordState.Released,
        token: null,
        expiresAt: now() + request.retentionMs,
      });
      reinsert(record);
      return true;
    },

    async markUncertain(request: MarkUncertainRequest): Promise<boolean> {
      const record = owned(request.key, request.token);
      if (!record) return false;
      const at = now();
      Object.assign(record, {
        state: RecordState.Uncertain,
        token: null,
        completedAt: at,
        expiresAt: at + request.retentionMs,
      });
      reinsert(record);
      return true;
    },

    async get(key: string): Promise<StoredRecord | undefined> {
      const record = records.get(key);
      return record ? snapshot(record) : undefined;
    },

    async delete(key: string): Promise<boolean> {
      return records.delete(key);
    },

    async sweep(limit: number): Promise<number> {
      const at = now();
      let deleted = 0;
      for (const record of records.values()) {
        if (deleted >= limit) break;
        if (record.expiresAt <= at) {
          records.delete(record.key);
          deleted++;
        }
      }
      return deleted;
    },

    async defaultSecret(): Promise<string> {
      return secret;
    },

    async close(): Promise<void> {
      records.clear();
    },
  };
}
