import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { encodeResponse } from '../../src/stores/response-codec.js';
import { schemaSql, statementSql } from '../../src/stores/sqlite-schema.js';
import type { RawSqliteResult } from './variants.js';

/**
 * The physical floor of the SQLite store: the two statements an executed request needs, with
 * nothing of idemkit around them. The store's own schema and SQL text (sqlite-schema.ts): the
 * claim upsert (`INSERT … ON CONFLICT … DO UPDATE … WHERE <claim predicate> RETURNING`) and the
 * completion (`UPDATE … WHERE key = @key AND … owner_token = @token`), each its own autocommit,
 * on a WAL file in a temp directory with the store's pragmas, distinct keys, better-sqlite3
 * called directly. Keys, tokens and the stored response are made before the clock starts.
 */
export interface RawLimits {
  /** Pairs timed at most per mode. */
  maxPairs: number;
  /** Wall time per mode at most, ms. */
  maxMs: number;
}

const TABLE = 'idemkit_records';

export function timeRawStatements(limits: RawLimits): RawSqliteResult {
  const dir = mkdtempSync(join(tmpdir(), 'idemkit-bench-raw-'));
  try {
    return {
      full: timeMode(join(dir, 'full.db'), 'FULL', limits),
      normal: timeMode(join(dir, 'normal.db'), 'NORMAL', limits),
      normalCold: timeMode(
        join(dir, 'cold.db'),
        'NORMAL',
        { ...limits, maxPairs: Math.min(limits.maxPairs, 2_000) },
        true,
      ),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Larger than the L2 cache of common server cores: touching it evicts SQLite's working set. */
const TRASH = new Uint8Array(8 << 20);

function evictCaches(): void {
  for (let i = 0; i < TRASH.length; i += 64) TRASH[i] = (TRASH[i] as number) + 1;
}

/** `cold`: evict the CPU caches before each pair; only the pairs are timed. */
function timeMode(path: string, synchronous: 'FULL' | 'NORMAL', limits: RawLimits, cold = false) {
  const db = new Database(path, { timeout: 50 });
  try {
    db.exec('PRAGMA busy_timeout = 50');
    db.exec(`PRAGMA synchronous = ${synchronous}`);
    db.prepare('PRAGMA journal_mode = WAL').get();
    db.exec(schemaSql(TABLE));
    const sql = statementSql(TABLE);
    const claim = db.prepare(sql.claim);
    const complete = db.prepare(sql.complete);
    // What the engine bench stores per request: 201, two allowlisted headers, a ~110-byte JSON body.
    const response = encodeResponse({
      status: 201,
      headers: [
        ['content-type', 'application/json'],
        ['location', '/orders/ord_123456'],
      ],
      body: Buffer.from(
        '{"id":"ord_123456","ref":"ord-000000123456","amount":4200,"currency":"eur","status":"created"}',
      ),
    });
    const fingerprint = `0:${randomBytes(32).toString('base64url')}`;
    const warmup = Math.min(200, limits.maxPairs);
    const count = warmup + limits.maxPairs;
    const prefix = randomBytes(8).toString('hex');
    const keys = Array.from({ length: count }, (_, i) => `${prefix}${i.toString(16).padStart(48, '0')}`);
    const tokens = Array.from({ length: count }, () => randomBytes(16).toString('hex'));
    let seq = 0;
    const pair = (): void => {
      const now = Date.now();
      const key = keys[seq] as string;
      const token = tokens[seq++] as string;
      const leaseUntil = now + 30_000;
      const won = claim.get({ key, fingerprint, token, leaseUntil, expiresAt: leaseUntil + 86_400_000, now });
      if (won === undefined) throw new Error('raw claim was not acquired');
      const done = complete.run({ key, token, now, expiresAt: now + 86_400_000, response });
      if (done.changes !== 1) throw new Error('raw complete did not own the key');
    };
    for (let i = 0; i < warmup; i++) pair();
    const deadline = process.hrtime.bigint() + BigInt(limits.maxMs) * 1_000_000n;
    let pairs = 0;
    let elapsedNs = 0n;
    while (pairs < limits.maxPairs) {
      if (cold) evictCaches();
      const t0 = process.hrtime.bigint();
      pair();
      const t1 = process.hrtime.bigint();
      elapsedNs += t1 - t0;
      pairs++;
      if (t1 >= deadline) break;
    }
    return { usPerPair: Number(elapsedNs) / 1_000 / pairs, pairs };
  } finally {
    db.close();
  }
}

/**
 * For `bench stores`: the same two statements on a fresh WAL file with the store's pragmas, each
 * its own autocommit (one fsync each at FULL), called directly: what the store did before group
 * commit, and what any store without batching pays per claim + completion.
 */
export interface RawSqlitePair {
  claim(key: string, token: string, fingerprint: string): void;
  complete(key: string, token: string, response: Uint8Array): void;
  close(): void;
}

export function rawSqliteAutocommit(path: string, synchronous: 'FULL' | 'NORMAL'): RawSqlitePair {
  const db = new Database(path, { timeout: 50 });
  db.exec(`PRAGMA synchronous = ${synchronous}`);
  db.prepare('PRAGMA journal_mode = WAL').get();
  db.exec(schemaSql(TABLE));
  const sql = statementSql(TABLE);
  const claim = db.prepare(sql.claim);
  const complete = db.prepare(sql.complete);
  return {
    claim(key: string, token: string, fingerprint: string): void {
      const now = Date.now();
      claim.get({ key, fingerprint, token, leaseUntil: now + 30_000, expiresAt: now + 90_000, now });
    },
    complete(key: string, token: string, response: Uint8Array): void {
      const now = Date.now();
      complete.run({ key, token, now, expiresAt: now + 60_000, response });
    },
    close: () => {
      db.close();
    },
  };
}
