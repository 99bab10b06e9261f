import type { RunResult } from './world.js';

/*
 * The invariants of docs/guarantees.md §2, judged over one run: the client history (every
 * answer), the execution ledger (every handler run, with the claim it ran under and whether it
 * reached its effect) and the store log (every call that reached the store, with the store time
 * it applied at and its real result, answered or not). The store log is judged against a
 * reference of the lease protocol kept here, not against the store's own code.
 */

export interface Violation {
  invariant: 'I1' | 'I2' | 'I3' | 'I4' | 'I5' | 'I6' | 'I7' | 'I8' | 'I9' | 'S8' | 'harness';
  detail: string;
}

export interface Verdict {
  violations: Violation[];
  /**
   * Measured, not judged: scopes with an answer sent before its result was stored whose result
   * never reached the store (F3: counted by `non-durable` events, never silent).
   */
  nonDurableScopes: number;
  executions: number;
  takeovers: number;
}

interface Ref {
  state: 'in_progress' | 'completed' | 'uncertain' | 'released';
  owner: number;
  print: number;
  leaseUntil: number;
  leaseMs: number;
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
  const completedTokens = new Set<number>();
  let takeovers = 0;
  for (const op of run.storeLog) {
    const ref = refs.get(op.key);
    const short = `${op.key.slice(0, 8)} #${op.seq}`;
    if (op.op === 'claim') {
      if (op.result !== 'acquired') continue;
      if (ref) {
        const live = ref.state === 'in_progress' && op.at < ref.leaseUntil;
        if (ref.state === 'completed' || ref.state === 'uncertain' || live) {
          flag(
            'I1',
            `${short}: claim acquired by token ${op.token} over ${ref.state} token ${ref.owner} (lease until ${ref.leaseUntil}, now ${op.at})`,
          );
        } else if (ref.state === 'in_progress') {
          takeovers++;
          if (ref.print !== op.print) flag('I4', `${short}: takeover by another fingerprint`);
        }
      }
      refs.set(op.key, {
        state: 'in_progress',
        owner: op.token,
        print: op.print ?? -1,
        leaseMs: op.leaseMs ?? 0,
        leaseUntil: op.at + (op.leaseMs ?? 0),
      });
      continue;
    }
    if (op.result !== 'true') continue;
    if (ref?.state !== 'in_progress' || ref.owner !== op.token) {
      flag(
        'I8',
        `${short}: ${op.op} accepted from token ${op.token}, owner is ${ref?.owner} (${ref?.state})`,
      );
      if (op.op === 'complete') completedTokens.add(op.token);
      continue;
    }
    if (op.op === 'heartbeat') ref.leaseUntil = op.at + ref.leaseMs;
    else if (op.op === 'complete') {
      ref.state = 'completed';
      completedTokens.add(op.token);
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

  // Answers, per scope.
  const byScope = new Map<string, typeof run.history>();
  for (const h of run.history) {
    if (h.type !== 'ok' || !h.answer) continue;
    const list = byScope.get(h.scope) ?? [];
    list.push(h);
    byScope.set(h.scope, list);
  }
  let nonDurableScopes = 0;
  const executionsByScope = new Map<string, number>();
  for (const e of run.executions) executionsByScope.set(e.scope, (executionsByScope.get(e.scope) ?? 0) + 1);

  for (const [scope, answers] of byScope) {
    const short = scope.slice(0, 8);
    const results = answers.filter((h) => h.answer && h.answer.status >= 200 && h.answer.status < 300);
    // F3: an answer sent before its result was stored is exempt from I1-I3 and I7 only when that
    // result never reached the store (the background write did not land before a takeover).
    const nonDurable = results.some((h) => {
      if (h.answer?.durable !== false) return false;
      const exec = (JSON.parse(h.answer.body) as { exec: number }).exec;
      return !completedTokens.has(run.executions[exec - 1]?.claimToken ?? -1);
    });
    if (nonDurable) nonDurableScopes++;
    for (const h of results) {
      const answer = h.answer as NonNullable<typeof h.answer>;
      const parsed = JSON.parse(answer.body) as { principal: string; body: string; exec: number };
      // I5: an answer made for another principal; I4: an answer to another request's body.
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
    }
    if (nonDurable) continue;
    // I3: every result of the scope has the same status and body; one original at most.
    const distinct = new Set(results.map((h) => `${h.answer?.status} ${h.answer?.body}`));
    if (distinct.size > 1)
      flag('I3', `${short}: ${distinct.size} different results: ${[...distinct].join(' | ')}`);
    const originals = results.filter((h) => h.answer?.code !== 'replay');
    if (originals.length > 1) flag('I1', `${short}: ${originals.length} original (non-replayed) results`);
    // I2 and I7: a stored result was answered, so one execution took effect and the store keeps it.
    if (results.length > 0) {
      const effective = run.executions.filter((e) => e.scope === scope && completedTokens.has(e.claimToken));
      if (effective.length !== 1)
        flag('I2', `${short}: answered a result, ${effective.length} effective executions`);
      const kept = run.finalRecords.get(scope);
      const answered = results[0]?.answer?.body;
      if (kept?.state !== 'completed' || kept.body !== answered) {
        flag('I7', `${short}: answered ${answered}, the store keeps ${kept?.state} ${kept?.body}`);
      }
    }
  }
  // I1 over effects: at most one execution per scope took effect (its completion was accepted).
  for (const scope of executionsByScope.keys()) {
    const effective = run.executions.filter((e) => e.scope === scope && completedTokens.has(e.claimToken));
    if (effective.length > 1) flag('I1', `${scope.slice(0, 8)}: ${effective.length} executions took effect`);
  }
  return { violations, nonDurableScopes, executions: run.executions.length, takeovers };
}
