import { createHash } from 'node:crypto';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { StoreUnavailableError } from '../core/errors.js';
import { RecordState, type StoredRecord, type StoredResponse } from '../core/store.js';
import { decodeResponse, encodeResponse } from './response-codec.js';

/*
 * One DynamoDB item per record. Attribute names are spelled out (they show up in the console and
 * in the docs' table layout); every expression refers to them through `#names`, because `state`,
 * `owner` and `ttl` are DynamoDB reserved words.
 *
 *   id           S  partition key: the store key (a hash of the scope, never the client's key)
 *   state        S  in_progress | completed | uncertain | released
 *   fingerprint  S  `<secret version>:<HMAC>` of the request
 *   generation   N  fencing token, +1 on every claim of a live record
 *   owner        S  the owner token of the attempt that claimed (never exposed)
 *   write        S  a random id of the last owner write, so a write the SDK retried after it
 *                   landed (its condition then fails) is recognised as ours
 *   leaseUntil   N  epoch ms (app server clock)
 *   expiresAt    N  epoch ms; past it (minus the skew margin) the record counts as absent
 *   createdAt    N  epoch ms
 *   completedAt  N  epoch ms, completed and uncertain records only
 *   response     B  the stored response (response-codec.ts), completed records only
 *   ttl          N  epoch SECONDS: DynamoDB's TTL attribute, expiresAt + the skew margin, rounded up
 */

export type Item = Record<string, AttributeValue>;

export const NAMES = {
  '#id': 'id',
  '#state': 'state',
  '#fp': 'fingerprint',
  '#gen': 'generation',
  '#owner': 'owner',
  '#lease': 'leaseUntil',
  '#exp': 'expiresAt',
  '#created': 'createdAt',
  '#completed': 'completedAt',
  '#response': 'response',
  '#ttl': 'ttl',
  '#write': 'write',
} as const;

export type AttributeRef = keyof typeof NAMES;

/** DynamoDB's item limit: attribute names and values together, 400 KB. */
export const ITEM_LIMIT_BYTES = 400 * 1024;
/**
 * Room kept for everything but the response (key ~70 bytes, fingerprint ~50, token 32, numbers,
 * attribute names): a completion whose encoded response is larger is stored without its body.
 */
const ITEM_OVERHEAD_BYTES = 2 * 1024;

export const str = (value: string): AttributeValue => ({ S: value });
export const num = (value: number): AttributeValue => ({ N: String(value) });

/** The TTL attribute: DynamoDB deletes at this second (days later, at its own pace). */
export function ttlSeconds(expiresAt: number, skewMs: number): AttributeValue {
  return num(Math.ceil((expiresAt + skewMs) / 1000));
}

/**
 * The response as it goes into the item. Above the item limit the body is left out (with its
 * SHA-256, as the engine does above `maxStoredBytes`): the replay answers `result-unavailable`,
 * and the original request, which already has its answer, never fails for it.
 */
export function responseAttribute(response: StoredResponse, limitBytes: number): Uint8Array {
  const blob = encodeResponse(response);
  if (blob.byteLength <= limitBytes - ITEM_OVERHEAD_BYTES || response.body.byteLength === 0) return blob;
  return encodeResponse({
    status: response.status,
    headers: response.headers,
    body: new Uint8Array(0),
    bodyOmitted: true,
    bodySha256: response.bodySha256 ?? createHash('sha256').update(response.body).digest('hex'),
  });
}

function text(item: Item, name: string): string | undefined {
  const value = item[name];
  return value !== undefined && 'S' in value && typeof value.S === 'string' ? value.S : undefined;
}

function int(item: Item, name: string): number | undefined {
  const value = item[name];
  if (value === undefined || !('N' in value) || typeof value.N !== 'string') return undefined;
  const n = Number(value.N);
  if (!Number.isSafeInteger(n)) throw shapeError(name);
  return n;
}

function shapeError(what: string): StoreUnavailableError {
  return new StoreUnavailableError(`dynamodb returned a record of an unexpected shape (${what})`);
}

const STATES = new Set<string>(Object.values(RecordState));

/** What a claim needs of an item beyond the record: who owns it. */
export interface ItemView {
  record: StoredRecord;
  owner: string | undefined;
  write: string | undefined;
}

export function parseItem(item: Item): ItemView {
  const key = text(item, 'id');
  const state = text(item, 'state');
  const fingerprint = text(item, 'fingerprint');
  const generation = int(item, 'generation');
  const leaseUntil = int(item, 'leaseUntil');
  const expiresAt = int(item, 'expiresAt');
  const createdAt = int(item, 'createdAt');
  if (key === undefined || state === undefined || !STATES.has(state) || fingerprint === undefined) {
    throw shapeError('id, state or fingerprint');
  }
  if (generation === undefined || leaseUntil === undefined || expiresAt === undefined) {
    throw shapeError('generation, leaseUntil or expiresAt');
  }
  const record: StoredRecord = {
    key,
    state: state as RecordState,
    fingerprint,
    generation,
    leaseUntil,
    expiresAt,
    createdAt: createdAt ?? 0,
    completedAt: int(item, 'completedAt') ?? null,
  };
  const response = item.response;
  if (state === RecordState.Completed && response !== undefined && 'B' in response && response.B) {
    record.response = decodeResponse(response.B);
  }
  return { record, owner: text(item, 'owner'), write: text(item, 'write') };
}
