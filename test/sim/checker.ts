import type { RunResult } from './world.js';

/*
 * The invariants of docs/guarantees.md §2, judged over one run: the client history (every
 * answer), the execution ledger (every handler run, with the claim it ran under and whether it
 * reached its effect) and the store log (every call that reached the store, with the store time
 * it applied at and its real result, answered or not). The store log is judged against a
 * reference of the lease protocol kept here, not against the store's own code.
 *
 * Retention: a result is promised only until it expires. The reference knows when each record
 * expires; a claim that acquires over an expired result starts a new "epoch" of the scope, and
 * the answer invariants (I1-I3, I7) are judged per epoch. Expiry is judged by the store times
 * the store actually acted at: once any call ran past a record's expiry it may have been swept,
 * even when the store's clock steps back afterwards (F11).
 */

export interface Violation {
  invariant: 'I1' | 'I2' | 'I3' | 'I4' | 'I5' | 'I6' | 'I7' | 'I8' | 'I9' | 'S8' | 'harness';
  detail: string;
}

export interface Verdict {
  violations: Violation[];
  /**
   * Measured, not judged: scope epochs with an answer sent before its result was stored whose
   * result never reached the store (F3: counted by `non-durable` events, never silent).
   */
  nonDurableScopes: number;
  executions: number;
  takeovers: number;
  /** Claims that acquired over an expired result (a new epoch of the scope). */
  expiredResults: number;
}

/** The reference record of one key, as the lease protocol says it must be. */
interface Ref {
  state: 'in_progress' | 'completed' | 'uncertain' | 'released';
  owner: number;
  print: number;
  leaseUntil: number;
  expiresAt: number;
  leaseMs: number;
  retentionMs: number;
  epoch: number;
  /**
   * A store call (a claim's lazy sweep, a completion's, the sweeper) ran at a store time past
   * `expiresAt`, so the record may be gone, even if the store's clock later stepped back (F11).
   */
  mayBeGone: boolean;
}

interface Completion {
  at: number;
  expiresAt: number;
  epoch: number;
}

export function check(run: RunResult): Verdict {
  const violations: Violation[] = [];
  const flag = (invariant: Violation['invariant'], detail: string): void => {
    violations.push({ invariant, detail });
  };
  for (const p of run.problems) flag('harness', p);
  for (const u of run.unresolved) flag('I6', `${u}: no final answer after the faults healed`);

  // The store log against the lease protocol (I1 at the store, I4 at takeover, I8).
  const refs = new Map<string, Ref>();
  /** Tokens whose completion the store accepted (the executions that took effect). */
  const completions = new Map<number, Completion>();
  const epochOfToken = new Map<number, number>();
  let takeovers = 0;
  let expiredResults = 0;
  for (const op of run.storeLog) {
    if (op.result !== 'not-applied') {
      for (const r of refs.values()) if (r.expiresAt <= op.at) r.mayBeGone = true;
    }
    if (op.op === 'sweep') continue;
    const ref = refs.get(op.key);
    const short = `${op.key.slice(0, 8)} #${op.seq}`;
    const leaseMs = op.leaseMs ?? 0;
    const retentionMs = op.retentionMs ?? 0;
    if (op.op === 'claim') {
      if (op.result !== 'acquired') continue;
      let epoch = ref?.epoch ?? 0;
      if (ref) {
        const expired = ref.mayBeGone;
        const live = ref.state === 'in_progress' && op.at < ref.leaseUntil;
        if (expired) {
          if (ref.state === 'completed' || ref.state === 'uncertain') {
            expiredResults++;
            epoch++;
          }
        } else if (ref.state === 'completed' || ref.state === 'uncertain' || live) {
          flag(
            'I1',
            `${short}: claim acquired by token ${op.token} over ${ref.state} token ${ref.owner} (lease until ${ref.leaseUntil}, expires ${ref.expiresAt}, now ${op.at})`,
          );
        } else if (ref.state === 'in_progress') {
          takeovers++;
          if (ref.print !== op.print) flag('I4', `${short}: takeover by another fingerprint`);
        }
      }
      epochOfToken.set(op.token, epoch);
      refs.set(op.key, {
        state: 'in_progress',
        owner: op.token,
        print: op.print ?? -1,
        leaseMs,
        retentionMs,
        leaseUntil: op.at + leaseMs,
        expiresAt: op.at + leaseMs + retentionMs,
        epoch,
        mayBeGone: false,
      });
      continue;
    }
    if (op.result !== 'true') continue;
    if (ref?.state !== 'in_progress' || ref.owner !== op.token) {
      flag(
        'I8',
        `${short}: ${op.op} accepted from token ${op.token}, owner is ${ref?.owner} (${ref?.state})`,
      );
      if (op.op === 'complete') {
        completions.set(op.token, { at: op.at, expiresAt: op.at + retentionMs, epoch: ref?.epoch ?? 0 });
      }
      continue;
    }
    // The owner's write was accepted, so the record was still there.
    ref.mayBeGone = false;
    if (op.op === 'heartbeat') {
      ref.leaseUntil = op.at + ref.leaseMs;
      ref.expiresAt = ref.leaseUntil + retentionMs;
      continue;
    }
    ref.expiresAt = op.at + retentionMs;
    if (op.op === 'complete') {
      ref.state = 'completed';
      completions.set(op.token, { at: op.at, expiresAt: ref.expiresAt, epoch: ref.epoch });
    } else if (op.op === 'release') ref.state = 'released';
    else ref.state = 'uncertain';
  }

  // Executions: each ran under a claim the store recorded and the engine was answered (I9).
  const acquired = new Set<string>();
  for (const op of run.storeLog) {
    if (op.op === 'claim' && op.result === 'acquired' && op.answer === 'ack')
      acquired.add(`${op.key}/${op.token}`);
  }
  for (const e of run.executions) {
    if (e.claimToken < 0 || !acquired.has(`${e.scope}/${e.claimToken}`)) {
      flag('I9', `execution ${e.id} ran without an acknowledged claim (generation ${e.generation})`);
    }
    const invoked = run.history.find((h) => h.type === 'invoke' && h.attempt === e.attempt);
    if (invoked?.scope !== e.scope)
      flag('I5', `execution ${e.id} ran under another scope than its request's`);
  }

  // S8: `maxInFlightPerPrincipal` refuses only a caller that holds its places (none leaks).
  for (const h of run.history) {
    if (h.answer?.code === 'capacity' && (h.inFlightPeers ?? 0) < run.cap) {
      flag('S8', `attempt ${h.attempt}: 429 capacity with ${h.inFlightPeers} of ${run.cap} places in use`);
    }
  }

  // Results (2xx answers), per scope and epoch: the epoch of the execution that made them.
  const tokenOfExec = (exec: number): number => run.executions[exec - 1]?.claimToken ?? -1;
  const groups = new Map<string, { scope: string; epoch: number; results: typeof run.history }>();
  for (const h of run.history) {
    const answer = h.answer;
    if (h.type !== 'ok' || !answer || answer.status < 200 || answer.status >= 300) continue;
    const parsed = JSON.parse(answer.body) as { principal: string; body: string; exec: number };
    const short = h.scope.slice(0, 8);
    // I5: an answer made for another caller; I4: an answer to another request's body.
    if (parsed.principal !== h.principal)
      flag('I5', `${short}: ${h.principal} got ${parsed.principal}'s answer`);
    if (parsed.body !== h.body)
      flag('I4', `${short}: a request with body ${h.body} got the result of ${parsed.body}`);
    const expected = answer.code === 'replay' ? 'true' : 'false';
    if (answer.replayed !== expected) {
      flag(
        'I3',
        `${short}: attempt ${h.attempt} (${answer.code}) says Idempotent-Replayed: ${answer.replayed}`,
      );
    }
    const epoch = epochOfToken.get(tokenOfExec(parsed.exec)) ?? -1;
    const id = `${h.scope}#${epoch}`;
    const group = groups.get(id) ?? { scope: h.scope, epoch, results: [] };
    group.results.push(h);
    groups.set(id, group);
  }
  /** Per scope, the epoch the store may still hold a result of at the end. */
  const lastEpoch = new Map<string, number>();
  for (const [key, ref] of refs) {
    if (!ref.mayBeGone && ref.expiresAt > run.endStoreTime) lastEpoch.set(key, ref.epoch);
  }

  let nonDurableScopes = 0;
  for (const { scope, epoch, results } of groups.values()) {
    const short = `${scope.slice(0, 8)} epoch ${epoch}`;
    // F3: an answer sent before its result was stored exempts its epoch from I1-I3 and I7 only
    // when that result never reached the store (the background write did not land in time).
    const nonDurable = results.some((h) => {
      if (h.answer?.durable !== false) return false;
      return !completions.has(tokenOfExec((JSON.parse(h.answer.body) as { exec: number }).exec));
    });
    if (nonDurable) {
      nonDurableScopes++;
      continue;
    }
    // I3: every result has the same status and body; I1: one original at most.
    const distinct = new Set(results.map((h) => `${h.answer?.status} ${h.answer?.body}`));
    if (distinct.size > 1)
      flag('I3', `${short}: ${distinct.size} different results: ${[...distinct].join(' | ')}`);
    const originals = results.filter((h) => h.answer?.code !== 'replay');
    if (originals.length > 1) flag('I1', `${short}: ${originals.length} original (non-replayed) results`);
    // I2: a stored result was answered, so exactly one execution of the epoch took effect.
    const effective = run.executions.filter((e) => {
      const done = completions.get(e.claimToken);
      return e.scope === scope && done !== undefined && done.epoch === epoch;
    });
    if (effective.length !== 1)
      flag('I2', `${short}: answered a result, ${effective.length} effective executions`);
    // I7: the store keeps the answered result until it expires.
    const answered = results[0]?.answer?.body ?? '';
    const exec = (JSON.parse(answered) as { exec: number }).exec;
    const done = completions.get(tokenOfExec(exec));
    if (!done || lastEpoch.get(scope) !== epoch) continue;
    const kept = run.finalRecords.get(scope);
    if (kept?.state !== 'completed' || kept.body !== answered) {
      flag('I7', `${short}: answered ${answered}, the store keeps ${kept?.state} ${kept?.body}`);
    }
  }
  // I1 over effects: at most one execution per scope and epoch took effect.
  const effectiveByEpoch = new Map<string, number>();
  for (const e of run.executions) {
    const done = completions.get(e.claimToken);
    if (!done) continue;
    const id = `${e.scope}#${done.epoch}`;
    effectiveByEpoch.set(id, (effectiveByEpoch.get(id) ?? 0) + 1);
  }
  for (const [id, count] of effectiveByEpoch) {
    if (count > 1) flag('I1', `${id.slice(0, 8)} epoch ${id.split('#')[1]}: ${count} executions took effect`);
  }
  return { violations, nonDurableScopes, executions: run.executions.length, takeovers, expiredResults };
}
