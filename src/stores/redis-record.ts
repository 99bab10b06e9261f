import { StoreUnavailableError } from '../core/errors.js';
import { RecordState, type StoredRecord } from '../core/store.js';
import { decodeResponse } from './response-codec.js';

/*
 * A Redis record is one string (format 2), written with a TTL that ends at expiresAt:
 *
 *   2 <state> <generation> <waited> <leaseUntil> <createdAt> <completedAt> <fpBytes> <slotBytes>\n
 *   <fingerprint><slot><encoded response>
 *
 * One string instead of a hash: a hash holding a response over 64 bytes leaves Redis's compact
 * encoding, and reading or writing it field by field cost several calls per script. A time is
 * epoch ms, `-` (none), or `~N`: N ms before the key's expiry. The relative form lets a claim be
 * a plain `SET NX PX` (no script, no TIME): Redis's own clock sets the expiry and so every lease
 * deadline, and `PEXPIRETIME` turns the offsets back into epoch ms. `waited` is 1 once a
 * duplicate found the record in progress; only then does settling PUBLISH a wake-up (see
 * redis-scripts.ts). Responses are only kept when completed.
 *
 * The slot holds the owner token while the record is in progress. A completed or uncertain record
 * holds its expiresAt there instead (epoch ms, in decimal; the scripts write it with `PXAT` that
 * same time), so a claim whose `SET NX GET` returns such a record has the whole replay in one
 * round trip, without asking for the key's expiry. Released records leave the slot empty, and so
 * did the settled records of earlier versions: their expiresAt is the key's `PEXPIRETIME`.
 * Earlier versions of format 2 skip the slot of a settled record as they skipped a token, so
 * mixed versions read each other's records.
 */

export const RECORD_FORMAT = '2';

/** The record a first claim writes with `SET key value NX PX leaseMs + retentionMs`. */
export function claimValue(fingerprint: string, token: string, retentionMs: number, ttlMs: number): string {
  return `${RECORD_FORMAT} in_progress 1 0 ~${retentionMs} ~${ttlMs} - ${Buffer.byteLength(fingerprint)} ${Buffer.byteLength(token)}\n${fingerprint}${token}`;
}

const NEWLINE = 0x0a;

/** Parses a format-2 value read together with the key's `PEXPIRETIME` (epoch ms). */
export function parseRecord(key: string, value: Buffer, expiresAt: number): StoredRecord {
  const record = parse(key, value, expiresAt);
  if (record === undefined) throw formatError(key);
  return record;
}

/**
 * The record a claim's `SET NX GET` returned, when that is the whole answer: a completed or
 * uncertain record that carries its expiresAt (Redis never returns an expired key outside a
 * script, and such a record is never claimable, so it is a replay). Anything else (in progress,
 * a release tombstone, an earlier version's settled record, a value this version cannot read)
 * is undefined: the CLAIM script decides, and reports a foreign value.
 */
export function settledRecord(key: string, value: Buffer): StoredRecord | undefined {
  // Cheap refusal first: most values a claim meets that are not replays are in progress.
  if (value[2] !== COMPLETED_INITIAL && value[2] !== UNCERTAIN_INITIAL) return undefined;
  try {
    return parse(key, value, undefined);
  } catch {
    return undefined;
  }
}

const COMPLETED_INITIAL = 0x63; // 'c'
const UNCERTAIN_INITIAL = 0x75; // 'u'

/**
 * Parses a format-2 value. `pexpiretime` is the key's expiry (epoch ms); without it, a settled record's
 * slot must carry it (else undefined). A value not in format 2 throws formatError.
 */
function parse(key: string, value: Buffer, pexpiretime: number | undefined): StoredRecord | undefined {
  const headEnd = value.indexOf(NEWLINE);
  const head = headEnd === -1 ? [] : value.toString('latin1', 0, headEnd).split(' ');
  const [format, state, gen, , lu, ca, co, fpBytes, slotBytes] = head;
  const fpLength = Number(fpBytes);
  const slotLength = Number(slotBytes);
  const fpStart = headEnd + 1;
  const slotStart = fpStart + fpLength;
  if (
    head.length !== 9 ||
    format !== RECORD_FORMAT ||
    !Number.isSafeInteger(fpLength) ||
    !Number.isSafeInteger(slotLength)
  ) {
    throw formatError(key);
  }
  const settled = state === RecordState.Completed || state === RecordState.Uncertain;
  if (pexpiretime === undefined && (!settled || slotLength === 0)) return undefined;
  const expiresAt = pexpiretime ?? Number(value.toString('latin1', slotStart, slotStart + slotLength));
  if (!Number.isSafeInteger(expiresAt) || expiresAt < 0) throw formatError(key);
  const time = (field: string | undefined): number => {
    const n = field?.startsWith('~') ? expiresAt - Number(field.slice(1)) : Number(field);
    if (!Number.isSafeInteger(n)) throw formatError(key);
    return n;
  };
  const record: StoredRecord = {
    key,
    state: state as StoredRecord['state'],
    fingerprint: value.toString('utf8', fpStart, slotStart),
    generation: time(gen),
    leaseUntil: time(lu),
    expiresAt,
    createdAt: time(ca),
    completedAt: co === '-' ? null : time(co),
  };
  if (state === RecordState.Completed) {
    record.response = decodeResponse(value.subarray(slotStart + slotLength));
  }
  return record;
}

/** An idemkit record this version cannot read (an older format, or not written by idemkit). */
export function formatError(key: string): StoreUnavailableError {
  return new StoreUnavailableError(
    `redis record ${key} is not in idemkit record format ${RECORD_FORMAT} (written by an older idemkit, or by something else): delete it or let it expire`,
  );
}
