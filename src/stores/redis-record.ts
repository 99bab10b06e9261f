import { StoreUnavailableError } from '../core/errors.js';
import { RecordState, type StoredRecord } from '../core/store.js';
import { decodeResponse } from './response-codec.js';

/*
 * A Redis record is one string (format 2), written with a TTL that ends at expiresAt:
 *
 *   2 <state> <generation> <waited> <leaseUntil> <createdAt> <completedAt> <fpBytes> <tokenBytes>\n
 *   <fingerprint><token><encoded response>
 *
 * One string instead of a hash: a hash holding a response over 64 bytes leaves Redis's compact
 * encoding, and reading or writing it field by field cost several calls per script. A time is
 * epoch ms, `-` (none), or `~N`: N ms before the key's expiry. The relative form lets a claim be
 * a plain `SET NX PX` (no script, no TIME): Redis's own clock sets the expiry and so every lease
 * deadline, and `PEXPIRETIME` turns the offsets back into epoch ms. expiresAt itself is never
 * stored: it is the key's expiry. `waited` is 1 once a duplicate found the record in progress;
 * only then does settling PUBLISH a wake-up (see redis-scripts.ts). Tokens are only kept while
 * in progress, responses only when completed.
 */

export const RECORD_FORMAT = '2';

/** The record a first claim writes with `SET key value NX PX leaseMs + retentionMs`. */
export function claimValue(fingerprint: string, token: string, retentionMs: number, ttlMs: number): string {
  return `${RECORD_FORMAT} in_progress 1 0 ~${retentionMs} ~${ttlMs} - ${Buffer.byteLength(fingerprint)} ${Buffer.byteLength(token)}\n${fingerprint}${token}`;
}

/**
 * What follows `2 completed 1 0 <leaseUntil> <createdAt>` in the completed record of such a claim
 * (the COMPLETE_CLAIMED script puts the two times in front: only Redis knows them).
 */
export function completedTail(fingerprint: string, retentionMs: number, response: Uint8Array): Buffer {
  const head = ` ~${retentionMs} ${Buffer.byteLength(fingerprint)} 0\n${fingerprint}`;
  return Buffer.concat([Buffer.from(head), response]);
}

const NEWLINE = 0x0a;

/** Parses a format-2 value read together with the key's `PEXPIRETIME` (epoch ms). */
export function parseRecord(key: string, value: Buffer, expiresAt: number): StoredRecord {
  const headEnd = value.indexOf(NEWLINE);
  const head = headEnd === -1 ? [] : value.toString('latin1', 0, headEnd).split(' ');
  const [format, state, gen, , lu, ca, co, fpBytes, tokenBytes] = head;
  const fpLength = Number(fpBytes);
  const fpStart = headEnd + 1;
  if (
    head.length !== 9 ||
    format !== RECORD_FORMAT ||
    !Number.isSafeInteger(fpLength) ||
    !Number.isSafeInteger(Number(tokenBytes)) ||
    !Number.isSafeInteger(expiresAt) ||
    expiresAt < 0
  ) {
    throw formatError(key);
  }
  const time = (field: string | undefined): number => {
    const n = field?.startsWith('~') ? expiresAt - Number(field.slice(1)) : Number(field);
    if (!Number.isSafeInteger(n)) throw formatError(key);
    return n;
  };
  const record: StoredRecord = {
    key,
    state: state as StoredRecord['state'],
    fingerprint: value.toString('utf8', fpStart, fpStart + fpLength),
    generation: time(gen),
    leaseUntil: time(lu),
    expiresAt,
    createdAt: time(ca),
    completedAt: co === '-' ? null : time(co),
  };
  if (state === RecordState.Completed) {
    record.response = decodeResponse(value.subarray(fpStart + fpLength + Number(tokenBytes)));
  }
  return record;
}

/** An idemkit record this version cannot read (an older format, or not written by idemkit). */
export function formatError(key: string): StoreUnavailableError {
  return new StoreUnavailableError(
    `redis record ${key} is not in idemkit record format ${RECORD_FORMAT} (written by an older idemkit, or by something else): delete it or let it expire`,
  );
}
