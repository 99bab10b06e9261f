import type { PutItemCommandInput, UpdateItemCommandInput } from '@aws-sdk/client-dynamodb';
import { type ClaimRequest, RecordState } from '../core/store.js';
import { type AttributeRef, type Item, NAMES, num, str, ttlSeconds } from './dynamodb-item.js';

/*
 * The conditional writes of the DynamoDB store, as command inputs. DynamoDB conditions have no
 * clock of their own, so every time in them is the app server's `now`, passed as a value; `:past`
 * is `now - clockSkewMs`, the latest instant every server is sure has passed. Deadlines that let
 * someone else in (a lapsed lease, an expiry) are compared with `:past`, never with `now`.
 */

/** Only the names an expression uses may be sent (DynamoDB refuses unused ones). */
function names(...refs: AttributeRef[]): Record<string, string> {
  return Object.fromEntries(refs.map((ref) => [ref, NAMES[ref]]));
}

export interface Clocked {
  now: number;
  skewMs: number;
}

/** A fresh in-progress item for `request` at `generation`. */
export function claimItem(request: ClaimRequest, generation: number, { now, skewMs }: Clocked): Item {
  const expiresAt = now + request.leaseMs + request.retentionMs;
  return {
    id: str(request.key),
    state: str(RecordState.InProgress),
    fingerprint: str(request.fingerprint),
    generation: num(generation),
    owner: str(request.token),
    leaseUntil: num(now + request.leaseMs),
    expiresAt: num(expiresAt),
    createdAt: num(now),
    ttl: ttlSeconds(expiresAt, skewMs),
  };
}

/**
 * The first claim: no item, or one past expiresAt (TTL deletion lags by up to days, so an expired
 * item is still there and counts as absent). Generation 1, as after a TTL deletion.
 */
export function firstClaim(table: string, request: ClaimRequest, clocked: Clocked): PutItemCommandInput {
  return {
    TableName: table,
    Item: claimItem(request, 1, clocked),
    ConditionExpression: 'attribute_not_exists(#id) OR #exp <= :past',
    ExpressionAttributeNames: names('#id', '#exp'),
    ExpressionAttributeValues: { ':past': num(clocked.now - clocked.skewMs) },
    ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
  };
}

/**
 * Taking a live item at generation + 1: a release tombstone, or an in-progress item whose lease
 * lapsed and whose fingerprint is the claimant's. The condition is that predicate again on the
 * item as it is now, plus the generation the claimant saw, so two claimants that read the same
 * item cannot both win.
 */
export function nextClaim(
  table: string,
  request: ClaimRequest,
  seenGeneration: number,
  clocked: Clocked,
): PutItemCommandInput {
  return {
    TableName: table,
    Item: claimItem(request, seenGeneration + 1, clocked),
    ConditionExpression:
      '#gen = :gen AND #exp > :past AND (#state = :released OR (#state = :running AND #lease <= :past AND #fp = :fp))',
    ExpressionAttributeNames: names('#gen', '#exp', '#state', '#lease', '#fp'),
    ExpressionAttributeValues: {
      ':gen': num(seenGeneration),
      ':past': num(clocked.now - clocked.skewMs),
      ':released': str(RecordState.Released),
      ':running': str(RecordState.InProgress),
      ':fp': str(request.fingerprint),
    },
    ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
  };
}

/** The state each settling write leaves. */
const SETTLED_STATE = {
  complete: RecordState.Completed,
  release: RecordState.Released,
  markUncertain: RecordState.Uncertain,
} as const;

export type OwnerWrite =
  | { kind: 'heartbeat'; leaseMs: number; retentionMs: number }
  | { kind: 'complete'; response: Uint8Array; retentionMs: number }
  | { kind: 'release'; retentionMs: number }
  | { kind: 'markUncertain'; retentionMs: number };

/** Every write after the claim: a compare-and-set on the owner token of a live in-progress item. */
export function ownerWrite(
  table: string,
  key: string,
  token: string,
  write: OwnerWrite,
  writeId: string,
  { now, skewMs }: Clocked,
): UpdateItemCommandInput {
  const values: Item = {
    ':running': str(RecordState.InProgress),
    ':token': str(token),
    ':write': str(writeId),
    ':past': num(now - skewMs),
  };
  let update: string;
  const refs: AttributeRef[] = ['#state', '#owner', '#exp', '#ttl', '#write'];
  if (write.kind === 'heartbeat') {
    const expiresAt = now + write.leaseMs + write.retentionMs;
    update = 'SET #write = :write, #lease = :lease, #exp = :exp, #ttl = :ttl';
    refs.push('#lease');
    Object.assign(values, { ':lease': num(now + write.leaseMs), ':exp': num(expiresAt) });
    values[':ttl'] = ttlSeconds(expiresAt, skewMs);
  } else {
    const expiresAt = now + write.retentionMs;
    values[':exp'] = num(expiresAt);
    values[':ttl'] = ttlSeconds(expiresAt, skewMs);
    values[':to'] = str(SETTLED_STATE[write.kind]);
    update = 'SET #write = :write, #state = :to, #exp = :exp, #ttl = :ttl';
    if (write.kind !== 'release') {
      update += ', #completed = :now';
      refs.push('#completed');
      values[':now'] = num(now);
    }
    if (write.kind === 'complete') {
      update += ', #response = :response';
      refs.push('#response');
      values[':response'] = { B: write.response };
    }
  }
  return {
    TableName: table,
    Key: { id: str(key) },
    UpdateExpression: update,
    // Past expiresAt the item is gone for everyone else (and TTL may delete it any moment).
    ConditionExpression: '#state = :running AND #owner = :token AND #exp > :past',
    ExpressionAttributeNames: names(...refs),
    ExpressionAttributeValues: values,
    ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
  };
}
