import { createHash } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import {
  type ClaimRequest,
  type CompleteRequest,
  type IdempotencyStore,
  isTransactionalStore,
  type StoreTransaction,
  StoreUnavailableError,
  type TransactionalStore,
} from '../../src/index.js';
import { monoMs } from './config.js';
import { type Crasher, requestKey } from './crash.js';

/*
 * The SUT's store, seen from its seam: every call is logged (op, store key, a short id of the
 * owner token, outcome, monotonic start and end) so the checker can count stale-owner writes
 * accepted (I8) and claims acquired during an outage (I9); each call can crash the process just
 * before it is sent or just after the store applied it (T53); an injected outage makes every call
 * fail (for SQLite, which has no network hop for the proxy to cut).
 *
 * `fencing: false` is the negative control of I8: a stale owner's completion is written anyway
 * (the record is deleted and rewritten under its token, like a plain SET), its heartbeat
 * "succeeds" and its release deletes whatever is there (a plain DEL) — the behaviour §1.2 of the
 * guarantees describes in two peer libraries.
 */

export interface StoreOp {
  op: string;
  key: string;
  token?: string;
  outcome: string;
  generation?: number;
  forced?: boolean;
  t0: number;
  t1: number;
  pid: number;
  sut: string;
}

export interface InstrumentedStore {
  store: IdempotencyStore;
  /** Every call fails with a store error until `restore()` (SIGUSR1 / SIGUSR2 in the SUT). */
  injectOutage(): void;
  restore(): void;
}

const tokenId = (token: string) => createHash('sha256').update(token).digest('hex').slice(0, 12);

export function instrumentStore(
  inner: IdempotencyStore,
  settings: { logFile: string; sut: string; crash: Crasher; fencing: boolean },
): InstrumentedStore {
  const { crash, fencing } = settings;
  let outage = false;
  /** Store key → client key (heartbeats run outside the request's context) and fingerprint. */
  const clientKeys = new Map<string, string>();
  const fingerprints = new Map<string, string>();

  const log = (entry: Omit<StoreOp, 'pid' | 'sut'>) =>
    appendFileSync(
      settings.logFile,
      `${JSON.stringify({ ...entry, pid: process.pid, sut: settings.sut })}\n`,
    );

  async function call<T>(
    op: string,
    key: string,
    token: string | undefined,
    run: () => Promise<T>,
    describe: (result: T) => Pick<StoreOp, 'outcome' | 'generation' | 'forced'>,
  ): Promise<T> {
    const clientKey = clientKeys.get(key) ?? requestKey.getStore();
    crash.pass(`${op}:before` as never, clientKey);
    const t0 = monoMs();
    if (outage) {
      log({ op, key, ...(token ? { token: tokenId(token) } : {}), outcome: 'injected-outage', t0, t1: t0 });
      throw new StoreUnavailableError('chaos: injected store outage');
    }
    let result: T;
    try {
      result = await run();
    } catch (error) {
      log({ op, key, ...(token ? { token: tokenId(token) } : {}), outcome: 'error', t0, t1: monoMs() });
      throw error;
    }
    log({ op, key, ...(token ? { token: tokenId(token) } : {}), ...describe(result), t0, t1: monoMs() });
    crash.pass(`${op}:after` as never, clientKey);
    return result;
  }

  const written = (ok: boolean, forced = false) => ({ outcome: ok ? 'accepted' : 'refused', forced });

  /** Without fencing: delete what is there and write this token's record in its place. */
  async function overwrite(key: string, token: string, write: () => Promise<boolean>): Promise<boolean> {
    const fingerprint = fingerprints.get(key);
    if (fingerprint === undefined) return false;
    await inner.delete(key);
    const claim: ClaimRequest = { key, fingerprint, token, leaseMs: 60_000, retentionMs: 86_400_000 };
    await inner.claim(claim);
    return write();
  }

  const store: IdempotencyStore = {
    name: inner.name,
    claim: (request) => {
      const clientKey = requestKey.getStore();
      if (clientKey !== undefined) clientKeys.set(request.key, clientKey);
      fingerprints.set(request.key, request.fingerprint);
      return call(
        'claim',
        request.key,
        request.token,
        () => inner.claim(request),
        (r) => ({
          outcome: r.outcome,
          generation: r.outcome === 'acquired' ? r.generation : r.record.generation,
        }),
      );
    },
    heartbeat: (request) =>
      call(
        'heartbeat',
        request.key,
        request.token,
        async () => {
          const ok = await inner.heartbeat(request);
          return fencing || ok ? { ok, forced: false } : { ok: true, forced: true };
        },
        (r) => written(r.ok, r.forced),
      ).then((r) => r.ok),
    complete: (request: CompleteRequest) =>
      call(
        'complete',
        request.key,
        request.token,
        async () => {
          const ok = await inner.complete(request);
          if (fencing || ok) return { ok, forced: false };
          return {
            ok: await overwrite(request.key, request.token, () => inner.complete(request)),
            forced: true,
          };
        },
        (r) => written(r.ok, r.forced),
      ).then((r) => r.ok),
    release: (request) =>
      call(
        'release',
        request.key,
        request.token,
        async () => {
          const ok = await inner.release(request);
          if (fencing || ok) return { ok, forced: false };
          return { ok: await inner.delete(request.key), forced: true };
        },
        (r) => written(r.ok, r.forced),
      ).then((r) => r.ok),
    markUncertain: (request) =>
      call(
        'markUncertain',
        request.key,
        request.token,
        async () => {
          const ok = await inner.markUncertain(request);
          if (fencing || ok) return { ok, forced: false };
          return {
            ok: await overwrite(request.key, request.token, () => inner.markUncertain(request)),
            forced: true,
          };
        },
        (r) => written(r.ok, r.forced),
      ).then((r) => r.ok),
    get: (key) =>
      call(
        'get',
        key,
        undefined,
        () => inner.get(key),
        (r) => ({ outcome: r ? r.state : 'absent' }),
      ),
    delete: (key) => inner.delete(key),
    sweep: (limit) => inner.sweep(limit),
    close: () => inner.close(),
    ...(inner.check ? { check: () => (inner.check as () => Promise<void>)() } : {}),
    ...(inner.defaultSecret ? { defaultSecret: () => (inner.defaultSecret as () => Promise<string>)() } : {}),
  };

  if (isTransactionalStore(inner)) {
    const transactional = store as TransactionalStore;
    transactional.beginTransaction = async (request) => {
      const tx = await call(
        'begin',
        request.key,
        request.token,
        () => (inner as TransactionalStore).beginTransaction(request),
        () => ({ outcome: 'open' }),
      );
      return wrapTransaction(tx, request.key, call);
    };
  }

  return {
    store,
    injectOutage: () => {
      outage = true;
    },
    restore: () => {
      outage = false;
    },
  };
}

type Call = <T>(
  op: string,
  key: string,
  token: string | undefined,
  run: () => Promise<T>,
  describe: (result: T) => Pick<StoreOp, 'outcome' | 'generation' | 'forced'>,
) => Promise<T>;

function wrapTransaction(tx: StoreTransaction, key: string, call: Call): StoreTransaction {
  return {
    client: tx.client,
    commit: (request) =>
      call(
        'commit',
        key,
        request.token,
        () => tx.commit(request),
        (outcome) => ({ outcome: outcome === 'committed' ? 'accepted' : outcome }),
      ),
    rollback: () => tx.rollback(),
  };
}
