import { createHash, randomBytes } from 'node:crypto';
import { systemClock } from '../core/clock.js';
import { CapacityError, IdempotencyConfigError, StoreUnavailableError } from '../core/errors.js';
import { defaultWarning } from '../core/portable.js';
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
  type StoredResponse,
} from '../core/store.js';
import { markInProcess } from '../core/store-call.js';

export interface MemoryStoreOptions {
  /**
   * Live records kept at most. At the cap, new claims are refused (503 `store-unavailable`)
   * rather than evicting a record that may still be needed for a replay.
   * @default 100_000
   */
  maxEntries?: number;
  /**
   * Bytes kept at most: stored bodies and headers, plus {@link MEMORY_RECORD_OVERHEAD_BYTES} and
   * the key and fingerprint per record. A completion that would pass the cap is kept without its
   * body (the caller got it whole; a replay answers 409 `result-unavailable`, as for a body above
   * `maxStoredBytes`) and counted in `stats()`. New claims are refused (503) only while the
   * records alone fill it. Expired records free their bytes.
   * @default 67_108_864 (64 MiB)
   */
  maxBytes?: number;
  /**
   * Live records one partition (tenant + principal, see `ClaimRequest.partition`) may hold; a
   * claim for one more is refused with `CapacityError` (429 `capacity` for that caller only).
   * The partition also gets the same fraction of `maxBytes` for bodies. Set it to `maxEntries`
   * to turn the share off.
   * @default a tenth of maxEntries (10_000)
   */
  maxEntriesPerPrincipal?: number;
  /** Store time source. @default Date.now */
  clock?: Clock;
  /**
   * Called once with a warning that this store is single-process, and once more the first time
   * a result is kept without its body because of `maxBytes`.
   * @default process.emitWarning
   */
  onWarning?: (message: string) => void;
}

/** What the store holds right now, for metrics and tests. */
export interface MemoryStoreStats {
  /** Records held, expired ones not yet swept included. */
  records: number;
  /** Bytes counted against `maxBytes`. */
  bytes: number;
  /** Partitions that hold at least one record. */
  partitions: number;
  /** Completions kept without their body because of `maxBytes` (a total since creation). */
  bodiesOmittedAtCapacity: number;
}

export interface MemoryStore extends IdempotencyStore {
  stats(): MemoryStoreStats;
}

/**
 * What one record costs besides its key, fingerprint, partition and response: the object, the
 * Map and Set entries, the owner token. An estimate, so the cap tracks real memory roughly.
 */
export const MEMORY_RECORD_OVERHEAD_BYTES = 256;

export const MEMORY_DEFAULT_MAX_BYTES = 64 * 1_048_576;

/**
 * One record as held: a single object of one shape, the response's parts as its own fields and
 * its headers flattened into one array (name, value, name, value…). A busy store holds tens of
 * thousands of these on the heap, and every object each one adds (response, pairs, hidden
 * classes) is work for every garbage collection. Callers get {@link StoredRecord}s built from it
 * on read (see snapshot).
 */
class MemoryRecord {
  key: string;
  state: RecordState;
  fingerprint: string;
  generation: number;
  leaseUntil: number;
  expiresAt: number;
  createdAt: number;
  completedAt: number | null;
  token: string | null;
  partition: string | undefined;
  /** What this record counts against the caps, fixed whenever it is written. */
  bytes = 0;
  /** The frozen copy callers get, made on first read after each write (see snapshot). */
  view: StoredRecord | undefined = undefined;
  /** The stored response's status; 0 while there is no response. */
  status = 0;
  /** The stored response's headers, flattened: name, value, name, value… */
  headers: readonly string[] = NO_HEADERS;
  body: Uint8Array = EMPTY;
  /** The response's optional fields; undefined when the stored response had none. */
  bodyOmitted: boolean | undefined = undefined;
  bodySha256: string | undefined = undefined;
  /** Neighbours in its partition's list, oldest write first (see Partition). */
  partPrev: MemoryRecord | undefined = undefined;
  partNext: MemoryRecord | undefined = undefined;

  constructor(request: ClaimRequest, generation: number, at: number) {
    this.key = request.key;
    this.state = RecordState.InProgress;
    this.fingerprint = request.fingerprint;
    this.generation = generation;
    this.leaseUntil = at + request.leaseMs;
    this.expiresAt = this.leaseUntil + request.retentionMs;
    this.createdAt = at;
    this.completedAt = null;
    this.token = request.token;
    this.partition = request.partition;
  }
}

/**
 * A partition's records as a list threaded through the records themselves, oldest write first
 * (the order the store's Map keeps), for a targeted sweep. A list rather than a Set of keys:
 * linking a record in and out costs a few pointer writes, where a Set as large as the store
 * would hash every key again on each claim and completion.
 */
interface Partition {
  head: MemoryRecord | undefined;
  tail: MemoryRecord | undefined;
  size: number;
  bytes: number;
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
 * process: two processes with memory stores do not see each other's claims. Bounded in records
 * (`maxEntries`), bytes (`maxBytes`) and records per caller (`maxEntriesPerPrincipal`).
 * @example
 * const idem = createIdempotency({ store: memoryStore() })
 */
export function memoryStore(options: MemoryStoreOptions = {}): MemoryStore {
  const maxEntries = positive('maxEntries', options.maxEntries ?? 100_000);
  const maxBytes = positive('maxBytes', options.maxBytes ?? MEMORY_DEFAULT_MAX_BYTES);
  const maxPerPartition = positive(
    'maxEntriesPerPrincipal',
    options.maxEntriesPerPrincipal ?? Math.max(1, Math.floor(maxEntries / 10)),
  );
  // A partition's share of the bytes is its share of the records.
  const maxBytesPerPartition = Math.floor(maxBytes * Math.min(1, maxPerPartition / maxEntries));
  const now = options.clock ?? systemClock;
  const warn = options.onWarning ?? defaultWarning;
  const records = new Map<string, MemoryRecord>();
  const partitions = new Map<string, Partition>();
  let usedBytes = 0;
  let bodiesOmitted = 0;
  const secret = randomBytes(32).toString('base64url');
  warn(
    'idemkit memoryStore keeps records in this process only: run one process, or use the SQLite, PostgreSQL or Redis store',
  );

  // Every write goes through add/remove, so records, bytes and partitions are counted exactly.
  // Map order is insertion order; writes that end a lease re-insert the record, so the oldest
  // entries are roughly the ones that expire first.
  function add(record: MemoryRecord): void {
    record.bytes = sizeOf(record);
    records.set(record.key, record);
    usedBytes += record.bytes;
    if (record.partition === undefined) return;
    let partition = partitions.get(record.partition);
    if (!partition) {
      partition = { head: undefined, tail: undefined, size: 0, bytes: 0 };
      partitions.set(record.partition, partition);
    }
    record.partPrev = partition.tail;
    record.partNext = undefined;
    if (partition.tail) partition.tail.partNext = record;
    else partition.head = record;
    partition.tail = record;
    partition.size++;
    partition.bytes += record.bytes;
  }

  function remove(record: MemoryRecord): void {
    if (records.get(record.key) !== record) return;
    records.delete(record.key);
    usedBytes -= record.bytes;
    if (record.partition === undefined) return;
    const partition = partitions.get(record.partition) as Partition;
    if (record.partPrev) record.partPrev.partNext = record.partNext;
    else partition.head = record.partNext;
    if (record.partNext) record.partNext.partPrev = record.partPrev;
    else partition.tail = record.partPrev;
    record.partPrev = undefined;
    record.partNext = undefined;
    partition.size--;
    partition.bytes -= record.bytes;
    if (partition.size === 0) partitions.delete(record.partition);
  }

  /** Applies a write that changes the record's state, size or position in the sweep order. */
  function rewrite(record: MemoryRecord, changes: Partial<MemoryRecord>): void {
    remove(record);
    Object.assign(record, changes);
    record.view = undefined;
    add(record);
  }

  function sweepOldest(count: number, at: number): void {
    let seen = 0;
    for (const record of records.values()) {
      if (seen++ >= count) return;
      if (record.expiresAt <= at) remove(record);
    }
  }

  function sweepPartition(name: string, count: number, at: number): void {
    let record = partitions.get(name)?.head;
    for (let seen = 0; record && seen < count; seen++) {
      // Read the next one first: remove() unlinks this record (and may drop the partition).
      const next: MemoryRecord | undefined = record.partNext;
      if (record.expiresAt <= at) remove(record);
      record = next;
    }
  }

  function recordsOf(name: string): number {
    return partitions.get(name)?.size ?? 0;
  }

  /**
   * Throws when `record` may not be added. Replacing a takeable record of the same partition
   * adds nothing, so only new records meet the caps; expired records are swept (bounded) first.
   */
  function admit(record: MemoryRecord, existing: MemoryRecord | undefined, at: number): void {
    const { partition } = record;
    if (
      partition !== undefined &&
      partition !== existing?.partition &&
      recordsOf(partition) >= maxPerPartition
    ) {
      sweepPartition(partition, FULL_SWEEP_PER_CLAIM, at);
      if (recordsOf(partition) >= maxPerPartition) {
        throw new CapacityError(
          `this caller holds its share of the memory store (${maxPerPartition} live records)`,
        );
      }
    }
    if (existing) return;
    sweepOldest(LAZY_SWEEP_PER_CLAIM, at);
    if (records.size < maxEntries && usedBytes + record.bytes <= maxBytes) return;
    sweepOldest(FULL_SWEEP_PER_CLAIM, at);
    if (records.size >= maxEntries) {
      throw new StoreUnavailableError(`memory store is full (${maxEntries} live records)`);
    }
    if (usedBytes + record.bytes > maxBytes) {
      throw new StoreUnavailableError(`memory store is full (maxBytes ${maxBytes} held by live records)`);
    }
  }

  function fits(record: MemoryRecord, response: StoredResponse): boolean {
    const grow = responseBytes(response);
    if (usedBytes + grow > maxBytes) return false;
    if (record.partition === undefined) return true;
    return (partitions.get(record.partition)?.bytes ?? 0) + grow <= maxBytesPerPartition;
  }

  /**
   * The response to keep: whole when it fits, else without body and headers (a replay answers
   * 409 `result-unavailable` and uses neither) but with the body's hash, like an oversized one.
   */
  function fitted(record: MemoryRecord, response: StoredResponse, at: number): StoredResponse {
    if (fits(record, response)) return response;
    sweepOldest(FULL_SWEEP_PER_CLAIM, at);
    if (record.partition !== undefined) sweepPartition(record.partition, FULL_SWEEP_PER_CLAIM, at);
    if (fits(record, response)) return response;
    if (bodiesOmitted++ === 0) {
      warn(
        `idemkit memoryStore reached maxBytes (${maxBytes} bytes, ${maxBytesPerPartition} per principal): results are kept without their bodies, and their replays answer 409 result-unavailable, until records expire; raise maxBytes or use another store`,
      );
    }
    return {
      status: response.status,
      headers: [],
      body: EMPTY,
      bodyOmitted: true,
      bodySha256: response.bodySha256 ?? createHash('sha256').update(response.body).digest('hex'),
    };
  }

  function owned(key: string, token: string): MemoryRecord | undefined {
    const record = records.get(key);
    return record && record.state === RecordState.InProgress && record.token === token ? record : undefined;
  }

  /**
   * What callers see: a frozen copy without the owner token, made once per write and handed to
   * every reader until the next write (a hot key is replayed without copying anything). The
   * stored response is frozen too; its body bytes are shared and must be treated as read-only.
   */
  function snapshot(record: MemoryRecord): StoredRecord {
    if (record.view) return record.view;
    const view: StoredRecord = {
      key: record.key,
      state: record.state,
      fingerprint: record.fingerprint,
      generation: record.generation,
      leaseUntil: record.leaseUntil,
      expiresAt: record.expiresAt,
      createdAt: record.createdAt,
      completedAt: record.completedAt,
    };
    if (record.status !== 0) view.response = heldResponse(record);
    record.view = Object.freeze(view);
    return record.view;
  }

  // In-process: its calls cannot hang, so the engine skips their timeout race (store-call.ts).
  return markInProcess({
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
      }
      const generation = (existing?.generation ?? 0) + 1;
      const record = new MemoryRecord(request, generation, at);
      record.bytes = sizeOf(record);
      admit(record, existing, at);
      if (existing) remove(existing);
      add(record);
      return existing?.state === RecordState.InProgress
        ? { outcome: 'acquired', generation, takeover: true }
        : { outcome: 'acquired', generation };
    },

    async heartbeat(request: HeartbeatRequest): Promise<boolean> {
      const record = owned(request.key, request.token);
      if (!record) return false;
      record.leaseUntil = now() + request.leaseMs;
      record.expiresAt = record.leaseUntil + request.retentionMs;
      record.view = undefined;
      return true;
    },

    async complete(request: CompleteRequest): Promise<boolean> {
      const record = owned(request.key, request.token);
      if (!record) return false;
      const at = now();
      const kept = fitted(record, request.response, at);
      // Field by field rather than through rewrite()'s changes object: this runs for every
      // executed request.
      remove(record);
      record.state = RecordState.Completed;
      record.completedAt = at;
      record.expiresAt = at + request.retentionMs;
      record.token = null;
      record.status = kept.status;
      record.headers = flattened(kept.headers);
      // Copied: the caller's buffer may be reused after we return. One memcpy
      // (Uint8Array.from walks the bytes one by one).
      record.body = kept.body.byteLength === 0 ? EMPTY : new Uint8Array(kept.body);
      record.bodyOmitted = 'bodyOmitted' in kept ? kept.bodyOmitted : undefined;
      record.bodySha256 = 'bodySha256' in kept ? kept.bodySha256 : undefined;
      record.view = undefined;
      add(record);
      return true;
    },

    async release(request: ReleaseRequest): Promise<boolean> {
      const record = owned(request.key, request.token);
      if (!record) return false;
      rewrite(record, { state: RecordState.Released, token: null, expiresAt: now() + request.retentionMs });
      return true;
    },

    async markUncertain(request: MarkUncertainRequest): Promise<boolean> {
      const record = owned(request.key, request.token);
      if (!record) return false;
      const at = now();
      rewrite(record, {
        state: RecordState.Uncertain,
        token: null,
        completedAt: at,
        expiresAt: at + request.retentionMs,
      });
      return true;
    },

    async get(key: string): Promise<StoredRecord | undefined> {
      const record = records.get(key);
      return record ? snapshot(record) : undefined;
    },

    async delete(key: string): Promise<boolean> {
      const record = records.get(key);
      if (!record) return false;
      remove(record);
      return true;
    },

    async sweep(limit: number): Promise<number> {
      const at = now();
      let deleted = 0;
      for (const record of records.values()) {
        if (deleted >= limit) break;
        if (record.expiresAt <= at) {
          remove(record);
          deleted++;
        }
      }
      return deleted;
    },

    stats(): MemoryStoreStats {
      return {
        records: records.size,
        bytes: usedBytes,
        partitions: partitions.size,
        bodiesOmittedAtCapacity: bodiesOmitted,
      };
    },

    async defaultSecret(): Promise<string> {
      return secret;
    },

    async close(): Promise<void> {
      records.clear();
      partitions.clear();
      usedBytes = 0;
    },
  });
}

const EMPTY = new Uint8Array(0);

const NO_HEADERS: readonly string[] = Object.freeze([]);

function flattened(headers: readonly (readonly [string, string])[]): readonly string[] {
  if (headers.length === 0) return NO_HEADERS;
  const flat = new Array<string>(headers.length * 2);
  for (let i = 0; i < headers.length; i++) {
    const [name, value] = headers[i] as readonly [string, string];
    flat[2 * i] = name;
    flat[2 * i + 1] = value;
  }
  return flat;
}

/**
 * The held response as callers see it, frozen (headers and each pair too) so it can be handed to
 * every replay as it is; the body bytes are shared and must be treated as read-only.
 */
function heldResponse(record: MemoryRecord): StoredResponse {
  const flat = record.headers;
  const headers = new Array<[string, string]>(flat.length / 2);
  for (let i = 0; i < headers.length; i++) {
    headers[i] = Object.freeze([flat[2 * i], flat[2 * i + 1]]) as [string, string];
  }
  const response: StoredResponse = {
    status: record.status,
    headers: Object.freeze(headers) as [string, string][],
    body: record.body,
  };
  if (record.bodyOmitted !== undefined) response.bodyOmitted = record.bodyOmitted;
  if (record.bodySha256 !== undefined) response.bodySha256 = record.bodySha256;
  return Object.freeze(response);
}

/** Strings are counted one byte per character: keys, hashes and header values are ASCII. */
function sizeOf(record: MemoryRecord): number {
  const own = record.key.length + record.fingerprint.length + (record.partition?.length ?? 0);
  if (record.status === 0) return MEMORY_RECORD_OVERHEAD_BYTES + own;
  let bytes = record.body.byteLength + (record.bodySha256?.length ?? 0);
  for (const part of record.headers) bytes += part.length;
  return MEMORY_RECORD_OVERHEAD_BYTES + own + bytes;
}

function responseBytes(response: StoredResponse): number {
  let bytes = response.body.byteLength + (response.bodySha256?.length ?? 0);
  for (const [name, value] of response.headers) bytes += name.length + value.length;
  return bytes;
}

function positive(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new IdempotencyConfigError(`memoryStore: ${name} must be a positive integer, got ${value}`);
  }
  return value;
}
