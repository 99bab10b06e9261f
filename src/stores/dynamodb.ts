import { randomBytes } from 'node:crypto';
import {
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { IdempotencyConfigError, StoreUnavailableError } from '../core/errors.js';
import {
  type ClaimRequest,
  type ClaimResult,
  type Clock,
  type IdempotencyStore,
  RecordState,
  type StoredRecord,
} from '../core/store.js';
import { withTimeout } from '../core/store-call.js';
import { type DynamoDBClientLike, isConditionFailed, storeError } from './dynamodb-client.js';
import {
  ITEM_LIMIT_BYTES,
  type Item,
  type ItemView,
  parseItem,
  responseAttribute,
  str,
} from './dynamodb-item.js';
import { checkTable } from './dynamodb-table.js';
import { type Clocked, firstClaim, nextClaim, type OwnerWrite, ownerWrite } from './dynamodb-writes.js';

export type { DynamoDBClientLike } from './dynamodb-client.js';
export { type CreateTableOptions, createTable } from './dynamodb-table.js';

export interface DynamoDBStoreOptions {
  /**
   * The app's `DynamoDBClient` from `@aws-sdk/client-dynamodb`; the store never configures or
   * destroys it. Give it a `requestHandler` with `connectionTimeout` and `requestTimeout` (e.g.
   * 500 and 1000 ms): the store's own timer answers 503 anyway, but the SDK's retries of a
   * hanging request would otherwise go on after that.
   */
  client: DynamoDBClientLike;
  /** The table made by `createTable()` or `idemkit migrate --store dynamodb://TABLE`. */
  tableName: string;
  /** Bound on every call (a claim's two or three requests together). @default 2_000 */
  timeoutMs?: number;
  /**
   * DynamoDB conditions have no clock: leases and expiry are stamped and compared with the app
   * servers' clocks. A lapsed lease is taken over, and an expired record counts as gone, only
   * once it is this much in the past, so servers whose clocks differ by less never take over a
   * live lease. Keep it above the clock skew between your hosts (NTP-synced: a few ms).
   * @default 1_000
   */
  clockSkewMs?: number;
  /** The app server clock, epoch ms (tests inject one). @default Date.now */
  clock?: Clock;
  /**
   * DynamoDB's item limit; a completion whose response does not fit is stored without its body
   * (its replay answers 409 `result-unavailable`). Lower it to keep items (and read costs) small.
   * @default 409_600 (400 KB)
   */
  maxItemBytes?: number;
  /** Receives the startup warning when TTL is off on the table. @default process.emitWarning */
  onWarning?: (message: string) => void;
}

/** How often a claim re-reads and retries when the item changed between its read and its write. */
const CLAIM_ATTEMPTS = 8;

/**
 * A store on DynamoDB through the app's `DynamoDBClient`: a claim is one conditional `PutItem`
 * (two when it takes over a tombstone or a lapsed lease), every later write a conditional
 * `UpdateItem` on the owner token; deadlines from the app server's clock (see `clockSkewMs`);
 * DynamoDB's TTL deletes expired items. Item layout: dynamodb-item.ts.
 * @example
 * await createTable({ client, tableName: 'idemkit' })
 * const idem = createIdempotency({ store: dynamodbStore({ client, tableName: 'idemkit' }), secret })
 */
export function dynamodbStore(options: DynamoDBStoreOptions): IdempotencyStore {
  const config = Object.freeze({
    client: options.client,
    table: options.tableName,
    timeoutMs: options.timeoutMs ?? 2_000,
    skewMs: options.clockSkewMs ?? 1_000,
    clock: options.clock ?? Date.now,
    maxItemBytes: options.maxItemBytes ?? ITEM_LIMIT_BYTES,
    onWarning: options.onWarning ?? ((m: string) => process.emitWarning(m, 'IdemkitWarning')),
  });
  const { client, table, timeoutMs, skewMs, clock } = config;
  if (!client || typeof client.send !== 'function') {
    throw new IdempotencyConfigError(
      'dynamodbStore: client must be a DynamoDBClient (an object with send())',
    );
  }
  if (typeof table !== 'string' || !/^[A-Za-z0-9_.-]{3,255}$/.test(table)) {
    throw new IdempotencyConfigError(
      'dynamodbStore: tableName must be 3-255 characters of A-Z a-z 0-9 _ . -',
    );
  }
  for (const [name, value, min] of [
    ['timeoutMs', timeoutMs, 1],
    ['clockSkewMs', skewMs, 0],
    ['maxItemBytes', config.maxItemBytes, 4_096],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < min) {
      throw new IdempotencyConfigError(`dynamodbStore: ${name} must be an integer of at least ${min}`);
    }
  }
  const clocked = (): Clocked => ({ now: clock(), skewMs });

  async function send<T>(operation: string, command: Parameters<DynamoDBClientLike['send']>[0]): Promise<T> {
    try {
      return (await client.send(command)) as T;
    } catch (error) {
      if (isConditionFailed(error)) throw error;
      throw storeError(operation, table, error);
    }
  }

  /** A strongly consistent read of the raw item (the claim's fallback when ALL_OLD is absent). */
  async function readItem(key: string): Promise<Item | undefined> {
    const read = await send<{ Item?: Item }>(
      'get',
      new GetItemCommand({ TableName: table, Key: { id: str(key) }, ConsistentRead: true }),
    );
    return read.Item;
  }

  /** The item a failed condition saw: ALL_OLD when the endpoint returns it, else a fresh read. */
  async function itemAfterFailure(key: string, error: unknown): Promise<ItemView | undefined> {
    const old = (error as { Item?: Item }).Item ?? (await readItem(key));
    return old === undefined ? undefined : parseItem(old);
  }

  /** A conditional PutItem: undefined when it landed, else what the condition met. */
  async function put(request: ClaimRequest, input: ConstructorParameters<typeof PutItemCommand>[0]) {
    try {
      await send('claim', new PutItemCommand(input));
      return { landed: true as const };
    } catch (error) {
      if (!isConditionFailed(error)) throw error;
      return { landed: false as const, seen: await itemAfterFailure(request.key, error) };
    }
  }

  async function claimOnce(request: ClaimRequest): Promise<ClaimResult> {
    let attempt = await put(request, firstClaim(table, request, clocked()));
    for (let round = 0; round < CLAIM_ATTEMPTS; round++) {
      if (attempt.landed) return { outcome: 'acquired', generation: 1 };
      const seen = attempt.seen;
      if (seen === undefined) {
        // Deleted (purge, TTL) between the write and the read: a first claim decides again.
        attempt = await put(request, firstClaim(table, request, clocked()));
        continue;
      }
      const { record, owner } = seen;
      // Our own claim, landed by a request the SDK retried after its answer was lost.
      if (owner === request.token && record.state === RecordState.InProgress) {
        return { outcome: 'acquired', generation: record.generation };
      }
      const now = clocked();
      const past = now.now - skewMs;
      if (record.expiresAt <= past) {
        attempt = await put(request, firstClaim(table, request, now));
        continue;
      }
      const lapsed =
        record.state === RecordState.InProgress &&
        record.leaseUntil <= past &&
        record.fingerprint === request.fingerprint;
      if (record.state !== RecordState.Released && !lapsed) {
        return { outcome: record.state === RecordState.InProgress ? 'in_progress' : 'completed', record };
      }
      const next = await put(request, nextClaim(table, request, record.generation, now));
      if (next.landed) {
        const generation = record.generation + 1;
        return lapsed
          ? { outcome: 'acquired', generation, takeover: true }
          : { outcome: 'acquired', generation };
      }
      attempt = next;
    }
    throw new StoreUnavailableError(`dynamodb claim kept racing for ${CLAIM_ATTEMPTS} attempts`);
  }

  async function writeAsOwner(key: string, token: string, write: OwnerWrite): Promise<boolean> {
    // A fresh id per call (not per request the SDK sends): a second call by the same owner
    // after it settled is refused, as the contract says, while the SDK's retry of this one is not.
    const writeId = randomBytes(8).toString('hex');
    const call = async () => {
      try {
        await send(
          write.kind,
          new UpdateItemCommand(ownerWrite(table, key, token, write, writeId, clocked())),
        );
        return true;
      } catch (error) {
        if (!isConditionFailed(error)) throw error;
        // Refused, unless the SDK retried this very write after it landed.
        const seen = await itemAfterFailure(key, error);
        return seen?.owner === token && seen.write === writeId;
      }
    };
    return withTimeout(`dynamodb ${write.kind}`, call, timeoutMs);
  }

  function bounded<T>(operation: string, call: () => Promise<T>): Promise<T> {
    return withTimeout(`dynamodb ${operation}`, call, timeoutMs);
  }

  return {
    name: 'dynamodb',

    // See the lease timeline above ClaimResult in core/store.ts; the conditions are in dynamodb-writes.ts.
    claim(request: ClaimRequest): Promise<ClaimResult> {
      // A claim that lands after our timeout holds the key for a caller that already got a 503:
      // give it back at once instead of leaving it until the lease lapses.
      const releaseLate = (late: ClaimResult) => {
        if (late.outcome !== 'acquired') return;
        const release = { kind: 'release', retentionMs: request.retentionMs } as const;
        writeAsOwner(request.key, request.token, release).catch(() => {});
      };
      return withTimeout('dynamodb claim', () => claimOnce(request), timeoutMs, releaseLate);
    },

    heartbeat: (r) =>
      writeAsOwner(r.key, r.token, { kind: 'heartbeat', leaseMs: r.leaseMs, retentionMs: r.retentionMs }),
    complete: (r) =>
      writeAsOwner(r.key, r.token, {
        kind: 'complete',
        response: responseAttribute(r.response, config.maxItemBytes),
        retentionMs: r.retentionMs,
      }),
    release: (r) => writeAsOwner(r.key, r.token, { kind: 'release', retentionMs: r.retentionMs }),
    markUncertain: (r) => writeAsOwner(r.key, r.token, { kind: 'markUncertain', retentionMs: r.retentionMs }),

    // An expired item may still be there (TTL deletion lags): it counts as absent.
    get: (key) =>
      bounded('get', async (): Promise<StoredRecord | undefined> => {
        const item = await readItem(key);
        if (item === undefined) return undefined;
        const { record } = parseItem(item);
        return record.expiresAt <= clock() - skewMs ? undefined : record;
      }),

    delete: (key) =>
      bounded('delete', async () => {
        const deleted = await send<{ Attributes?: Item }>(
          'delete',
          new DeleteItemCommand({ TableName: table, Key: { id: str(key) }, ReturnValues: 'ALL_OLD' }),
        );
        // An expired item was already gone for every other call: deleting it deletes nothing.
        const old = deleted.Attributes;
        return old !== undefined && parseItem(old).record.expiresAt > clock() - skewMs;
      }),

    // DynamoDB's TTL deletes expired items (the `ttl` attribute); claims and reads ignore them
    // until it does. A Scan here would read the whole table on every sweep.
    async sweep(): Promise<number> {
      return 0;
    },

    check: () =>
      bounded('check', () =>
        checkTable(client, table, config.onWarning).catch((error: unknown) => {
          throw storeError('check', table, error);
        }),
      ),

    // The client is the app's.
    async close(): Promise<void> {},
  };
}
