import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hashCredential, scopeHash } from '../../src/core/scope.js';
import { AUTH_PREFIX, PAY_PATH } from './config.js';
import type { Attempt } from './history.js';
import type { StoreOp } from './sut-store.js';

/*
 * The checker: reads the client histories, the SUT ledgers and store-call logs, the downstream's
 * table (or the transactional effect rows) and the fault log, and evaluates the invariants
 * (docs/guarantees.md I1–I9). It judges only what the files show; every count it reports can be
 * traced to lines in them.
 */

export interface LedgerEntry {
  ev: string;
  sut: string;
  pid: number;
  t: number;
  key?: string;
  principal?: string;
  bodySha?: string;
  exec?: string;
  generation?: number;
  storeKey?: string;
}

export interface DownstreamEntry {
  applied: boolean;
  downstreamKey: string;
  scope: string;
  exec: string;
}

/** A window in which a SUT (or every SUT: '*') could not reach its store. */
export interface FaultWindow {
  kind: string;
  target: string;
  start: number;
  end: number;
  /** Store unreachable (cut, stopped, injected outage): claims must fail (I9). */
  storeDown?: boolean;
}

export interface RunFiles {
  attempts: Attempt[];
  ledger: LedgerEntry[];
  storeOps: StoreOp[];
  downstream: DownstreamEntry[];
  faults: FaultWindow[];
}

export interface Verdicts {
  scopes: number;
  attempts: number;
  executions: number;
  effective: number;
  /** I1: effective executions beyond the first, summed over scopes. */
  duplicateExecutions: number;
  /** I2: scopes answered 2xx whose effective executions are not exactly one. */
  acknowledgedNotOnce: number;
  /** I3: scopes whose 2xx answers differ, or with more than one original. */
  replayMismatches: number;
  /** I4: a reused key with another body that executed or got a 2xx. */
  mismatchExecuted: number;
  /** I5: a 2xx naming another principal. */
  crossScope: number;
  /** I6: attempts over the deadline; scopes with no final answer after the final phase. */
  overDeadline: number;
  unresolved: number;
  /** I7: scopes answered 2xx that did not replay at the end (non-durable ones apart). */
  lostAcknowledgements: number;
  lostNonDurable: number;
  /** I8: writes accepted from an owner whose lease another owner had already taken over. */
  staleWritesAccepted: number;
  /** I9: executions of claims made while their SUT's store was down (or with no claim at all). */
  executionsWhileStoreDown: number;
  /** Measured, not judged. */
  uncertainHeld: number;
  rawDuplicateRuns: number;
  maxLatencyMs: number;
  examples: string[];
}

export const DEADLINE_MS = 30_000;

const readJsonl = <T>(file: string): T[] =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter((line) => line.trim() !== '')
        .flatMap((line) => {
          try {
            return [JSON.parse(line) as T];
          } catch {
            // The last line of a process killed mid-append.
            return [];
          }
        })
    : [];

export function readRun(dir: string): RunFiles {
  const all = readdirSync(dir);
  const gather = <T>(prefix: string) =>
    all
      .filter((f) => f.startsWith(prefix) && f.endsWith('.jsonl'))
      .flatMap((f) => readJsonl<T>(join(dir, f)));
  return {
    attempts: gather<Attempt>('history-'),
    ledger: gather<LedgerEntry>('ledger-'),
    storeOps: gather<StoreOp>('store-'),
    downstream: readJsonl<DownstreamEntry>(join(dir, 'downstream.jsonl')),
    faults: readJsonl<FaultWindow>(join(dir, 'faults.jsonl')),
  };
}

/** The store key idemkit derives for a chaos scope (`principal|key` on POST /pay). */
export function storeKeyOf(scope: string): string {
  const at = scope.indexOf('|');
  const principal = scope.slice(0, at);
  return scopeHash({
    tenant: '',
    principal: hashCredential(`${AUTH_PREFIX}${principal}`),
    method: 'POST',
    path: PAY_PATH,
    key: scope.slice(at + 1),
  });
}

export interface CheckOptions {
  /** Transactional mode: effective executions are the committed effect rows, per scope. */
  effectRows?: Map<string, number>;
}

export function check(run: RunFiles, options: CheckOptions = {}): Verdicts {
  const examples: string[] = [];
  const note = (text: string) => {
    if (examples.length < 12) examples.push(text);
  };
  const byScope = groupBy(
    run.attempts.filter((a) => !a.mutated),
    (a) => a.scope,
  );
  const execs = run.ledger.filter((e) => e.ev === 'exec');
  const effects = run.ledger.filter((e) => e.ev === 'effect');
  const effective =
    options.effectRows ??
    countBy(
      run.downstream.filter((d) => d.applied),
      (d) => d.scope,
    );
  const runs = countBy(effects, (e) => `${e.principal}|${e.key}`);

  const v: Verdicts = {
    scopes: byScope.size,
    attempts: run.attempts.length,
    executions: execs.length,
    effective: [...effective.values()].reduce((a, b) => a + b, 0),
    duplicateExecutions: 0,
    acknowledgedNotOnce: 0,
    replayMismatches: 0,
    mismatchExecuted: 0,
    crossScope: 0,
    overDeadline: 0,
    unresolved: 0,
    lostAcknowledgements: 0,
    lostNonDurable: 0,
    staleWritesAccepted: 0,
    executionsWhileStoreDown: 0,
    uncertainHeld: 0,
    rawDuplicateRuns: [...runs.values()].reduce((sum, n) => sum + Math.max(0, n - 1), 0),
    maxLatencyMs: 0,
    examples,
  };

  for (const [scope, count] of effective) {
    if (count > 1) {
      v.duplicateExecutions += count - 1;
      note(`I1 ${scope}: ${count} effective executions`);
    }
  }

  const nonDurable = new Set(run.ledger.filter((e) => e.ev === 'non-durable').map((e) => e.storeKey));
  const originalBody = new Map<string, string>();
  for (const [scope, attempts] of byScope) {
    originalBody.set(scope, (attempts[0] as Attempt).bodySha);
    const oks = attempts.filter((a) => a.outcome === 'ok');
    const effectiveCount = effective.get(scope) ?? 0;
    const loadOks = oks.filter((a) => a.phase !== 'verify');
    if (loadOks.length > 0 && effectiveCount !== 1) {
      v.acknowledgedNotOnce++;
      note(`I2 ${scope}: answered 2xx, ${effectiveCount} effective executions`);
    }
    const shapes = new Set(oks.map((a) => `${a.status}|${a.responseSha}|${a.headersSha}`));
    const originals = oks.filter((a) => !a.replayed).length;
    // An answer sent non-durable whose record never landed may be followed by a second original:
    // the documented I7 exception, counted there (lostNonDurable), not here.
    const secondOriginalExcused = originals === 2 && nonDurable.has(storeKeyOf(scope));
    if (shapes.size > 1 || (originals > 1 && !secondOriginalExcused)) {
      v.replayMismatches++;
      note(`I3 ${scope}: ${shapes.size} distinct 2xx answers, ${originals} originals`);
    }
    for (const a of oks) {
      if (a.answeredPrincipal !== a.principal) {
        v.crossScope++;
        note(`I5 ${scope}: answer for ${a.answeredPrincipal} reached ${a.principal}`);
      }
    }
    const uncertain = attempts.some((a) => a.problem === 'outcome-uncertain');
    if (uncertain && oks.length === 0) v.uncertainHeld++;
    if (oks.length === 0 && !uncertain) {
      v.unresolved++;
      note(`I6 ${scope}: no final answer (last: ${describe(attempts[attempts.length - 1])})`);
    }
    const acknowledged = loadOks.length > 0;
    const verified = attempts.filter((a) => a.phase === 'verify');
    if (acknowledged && verified.length > 0 && !verified.some((a) => a.outcome === 'ok' && a.replayed)) {
      if (nonDurable.has(storeKeyOf(scope))) v.lostNonDurable++;
      else {
        v.lostAcknowledgements++;
        note(`I7 ${scope}: answered 2xx, then ${describe(verified[verified.length - 1])}`);
      }
    }
  }

  for (const a of run.attempts) {
    const latency = a.done - a.invoke;
    v.maxLatencyMs = Math.max(v.maxLatencyMs, latency);
    if (latency > DEADLINE_MS) {
      v.overDeadline++;
      note(`I6 ${a.scope}: an attempt took ${Math.round(latency)} ms`);
    }
    if (a.mutated && a.outcome === 'ok') {
      v.mismatchExecuted++;
      note(`I4 ${a.scope}: another body got ${a.status}`);
    }
  }
  for (const e of execs) {
    const scope = `${e.principal}|${e.key}`;
    const original = originalBody.get(scope);
    if (original !== undefined && e.bodySha !== original) {
      v.mismatchExecuted++;
      note(`I4 ${scope}: executed with another body`);
    }
  }

  v.staleWritesAccepted = staleWrites(run.storeOps, note);
  v.executionsWhileStoreDown = executionsWhileDown(
    execs,
    run.storeOps,
    [...run.faults, ...injectedOutages(run.ledger)],
    note,
  );
  return v;
}

/** I8: a write accepted from a token after a later generation's claim was acknowledged. */
function staleWrites(ops: StoreOp[], note: (text: string) => void): number {
  const claims = ops.filter((o) => o.op === 'claim' && o.outcome === 'acquired');
  const generationOf = new Map(claims.map((c) => [`${c.key}|${c.token}`, c.generation ?? 0]));
  const acquiredByKey = groupBy(claims, (c) => c.key);
  let stale = 0;
  for (const write of ops) {
    if (!['heartbeat', 'complete', 'release', 'markUncertain', 'commit'].includes(write.op)) continue;
    if (write.outcome !== 'accepted') continue;
    const generation = generationOf.get(`${write.key}|${write.token}`);
    if (generation === undefined) continue;
    const overtaken = (acquiredByKey.get(write.key) ?? []).some(
      (c) => c.token !== write.token && (c.generation ?? 0) > generation && c.t1 < write.t0,
    );
    if (overtaken) {
      stale++;
      note(
        `I8 ${write.key.slice(0, 12)}: ${write.op} accepted from generation ${generation} after a takeover`,
      );
    }
  }
  return stale;
}

/** Injected outages (SQLite) as the SUT processes logged them: from `outage-on` to `outage-off`. */
function injectedOutages(ledger: LedgerEntry[]): FaultWindow[] {
  const windows: FaultWindow[] = [];
  const open = new Map<number, number>();
  for (const e of [...ledger].sort((a, b) => a.t - b.t)) {
    if (e.ev === 'outage-on') open.set(e.pid, e.t);
    if (e.ev === 'outage-off' && open.has(e.pid)) {
      windows.push({
        kind: 'injected outage',
        target: e.sut,
        start: open.get(e.pid) as number,
        end: e.t,
        storeDown: true,
      });
      open.delete(e.pid);
    }
  }
  for (const [pid, start] of open) {
    const sut = ledger.find((e) => e.pid === pid)?.sut ?? '*';
    windows.push({
      kind: 'injected outage',
      target: sut,
      start,
      end: Number.POSITIVE_INFINITY,
      storeDown: true,
    });
  }
  return windows;
}

/** I9: an execution whose claim was acknowledged inside a store-down window of its SUT. */
function executionsWhileDown(
  execs: LedgerEntry[],
  ops: StoreOp[],
  faults: FaultWindow[],
  note: (text: string) => void,
): number {
  const down = faults.filter((f) => f.storeDown);
  if (down.length === 0) return 0;
  const claimAt = new Map<string, [number, number]>();
  for (const o of ops)
    if (o.op === 'claim' && o.outcome === 'acquired')
      claimAt.set(`${o.pid}|${o.key}|${o.generation}`, [o.t0, o.t1]);
  let count = 0;
  for (const e of execs) {
    const scope = `${e.principal}|${e.key}`;
    // Sent after the store went away and acknowledged before it came back. Without idemkit
    // there is no claim: the execution itself is the moment.
    const at =
      claimAt.get(`${e.pid}|${storeKeyOf(scope)}|${e.generation}`) ?? (e.generation ? undefined : [e.t, e.t]);
    if (at === undefined) continue;
    const [sent, acknowledged] = at;
    const inside = down.find(
      (f) => (f.target === '*' || f.target === e.sut) && sent > f.start && acknowledged < f.end,
    );
    if (inside) {
      count++;
      note(`I9 ${scope}: claimed during ${inside.kind} of ${inside.target}`);
    }
  }
  return count;
}

function describe(a: Attempt | undefined): string {
  if (!a) return 'nothing';
  return a.status ? `${a.status} ${a.problem ?? ''}`.trim() : (a.error ?? 'no answer');
}

export function groupBy<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}

function countBy<T>(items: T[], key: (item: T) => string): Map<string, number> {
  const out = new Map<string, number>();
  for (const item of items) out.set(key(item), (out.get(key(item)) ?? 0) + 1);
  return out;
}

/** The counts that must be zero (the card's "Nothing lost" section). */
export function violations(v: Verdicts): Record<string, number> {
  return {
    'duplicate effective executions (I1)': v.duplicateExecutions,
    'acknowledged, not executed exactly once (I2)': v.acknowledgedNotOnce,
    'replay mismatches (I3)': v.replayMismatches,
    'executions despite a mismatch (I4)': v.mismatchExecuted,
    'cross-scope responses (I5)': v.crossScope,
    'requests over the 30 s deadline (I6)': v.overDeadline,
    'keys unresolved after the final phase (I6)': v.unresolved,
    'acknowledged but not replayable (I7)': v.lostAcknowledgements,
    'stale-owner writes accepted (I8)': v.staleWritesAccepted,
    'executions while the store was down (I9)': v.executionsWhileStoreDown,
  };
}
