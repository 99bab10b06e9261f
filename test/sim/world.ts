import { createHash } from 'node:crypto';
import { createIdempotency, type Decision, type Idempotency } from '../../src/core/engine.js';
import type { ExecuteDecision } from '../../src/core/execution.js';
import { type EngineRequest, headerValue } from '../../src/core/request.js';
import type { EngineResponse } from '../../src/core/response.js';
import { downstreamKeyFor, scopeHash } from '../../src/core/scope.js';
import { Prng } from './prng.js';
import { Connection, type Delivery, SharedStore, type StoreOp, type StoreVariant } from './sim-store.js';
import { VirtualTime } from './virtual-time.js';

/*
 * One simulated run: a seed fixes the scenario (clients, scopes, bodies, fault rates) and every
 * choice the scheduler makes. Between two steps every pending microtask runs (one real
 * setImmediate), so the engine always reaches its next await point before the next choice. Each
 * step is one of: deliver a parked store call (answered, failed before it applied, applied with
 * its answer lost, applied and never answered), let a handler pass its next await point, let a
 * client send (a first attempt, a retry, or a duplicate of one in flight), advance monotonic time
 * (heartbeats, store timeouts, retry sleeps, wait-mode polls), jump the store's clock, crash an
 * engine instance (its executions are abandoned mid-way, its parked calls applied or not but never
 * answered), or start a new instance on the same store.
 */

export const LEASE_MS = 10_000;
export const RETENTION_MS = 10 * 86_400_000;
export const SHORT_RETENTION_MS = 20_000;
export const STORE_TIMEOUT_MS = 2_000;
const MAX_STEPS = 700;
/** After the faults heal: attempts each unfinished client gets, and the steps they have. */
const HEALED_ATTEMPTS = 60;
const RETRY_AFTER_MS = 1_000;
const HEALED_STEPS = 3_000;
const MAX_INSTANCES = 4;
const STORE_EPOCH = 1_700_000_000_000;

/**
 * What runs: the real store and engine (`correct`), a deliberately broken store, or the engine
 * configured with `failOpen` (it then runs handlers without a claim when the store fails, which
 * I9 forbids by default): the negative controls.
 */
export type Variant = StoreVariant | 'fail-open';

export interface Answer {
  status: number;
  replayed: string | undefined;
  body: string;
  /** A problem's code, or the commit's disposition. */
  code: string;
  durable: boolean;
}

export interface HistoryEvent {
  step: number;
  type: 'invoke' | 'ok' | 'fail';
  client: number;
  attempt: number;
  instance: number;
  scope: string;
  /** The caller: `tenant/principal`. */
  principal: string;
  body: string;
  answer?: Answer;
  reason?: string;
  /** For a `capacity` refusal: the caller's other attempts open on that instance at the time. */
  inFlightPeers?: number;
}

export interface Execution {
  id: number;
  instance: number;
  attempt: number;
  scope: string;
  principal: string;
  body: string;
  generation: number;
  /** The token of the acquired claim this connection answered just before, or -1 when none matched. */
  claimToken: number;
  effect: boolean;
  downstreamKey?: string;
}

export interface RunResult {
  seed: number;
  variant: Variant;
  history: HistoryEvent[];
  executions: Execution[];
  storeLog: StoreOp[];
  /** The store's record of each scope after the run: state and response body. */
  finalRecords: Map<string, { state: string; status: number | undefined; body: string | undefined }>;
  /** Harness-level problems: the engine threw, the run did not finish within its step bound. */
  problems: string[];
  /** Where each crash found the instance's flows: the await points it cut (for coverage). */
  crashPoints: string[];
  /** Clients without a final answer after the faults healed and they retried (I6). */
  unresolved: string[];
  steps: number;
  /** The engines' `maxInFlightPerPrincipal` in this run. */
  cap: number;
  retentionMs: number;
  /** Store time when the history closed (what expired by then is no longer promised). */
  endStoreTime: number;
}

interface Client {
  id: number;
  tenant: string;
  principal: string;
  /** Tenant and principal, as the history and the answers name the caller. */
  caller: string;
  key: string;
  body: string;
  attemptsLeft: number;
  duplicatesLeft: number;
  outstanding: number;
  done: boolean;
  /** Virtual time before which the client does not retry (after the faults heal: Retry-After). */
  readyAt: number;
}

interface Attempt {
  id: number;
  client: Client;
  instance: Instance;
  closed: boolean;
}

interface Instance {
  id: number;
  engine: Idempotency;
  conn: Connection;
  dead: boolean;
  /** Executions handed out and not yet committed or aborted (crash leaves them here). */
  running: Set<ExecuteDecision>;
  attempts: Set<Attempt>;
}

interface Gate {
  instance: Instance;
  /** The handler's await point: 'before effect', 'before commit', 'bypassed handler'. */
  label: string;
  open: () => void;
}

const PRINCIPALS = ['alice', 'bob'];
const KEYS = ['k1', 'k2'];
const PATH = '/pay';

export function scopeOf(tenant: string, principal: string, key: string): string {
  return scopeHash({ tenant, principal, method: 'POST', path: PATH, key });
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export async function runSeed(seed: number, variant: Variant = 'correct'): Promise<RunResult> {
  const rng = new Prng(seed);
  const time = new VirtualTime();
  let storeSkew = 0;
  const store = new SharedStore(
    () => STORE_EPOCH + time.now + storeSkew,
    variant === 'fail-open' ? 'correct' : variant,
  );
  const history: HistoryEvent[] = [];
  const executions: Execution[] = [];
  const problems: string[] = [];
  const unresolved: string[] = [];
  const crashPoints: string[] = [];
  const instances: Instance[] = [];
  const gates: Gate[] = [];
  let step = 0;
  let nextAttempt = 1;

  // The scenario.
  const faultRate = rng.pick([0, 0.05, 0.15, 0.3]);
  const wait = rng.chance(0.25) ? rng.pick([1_500, 6_000]) : 0;
  const failBefore = rng.pick([0, 0.1]);
  const failAfter = rng.pick([0, 0.05]);
  const cap = rng.pick([1_000, 1_000, 1_000, 2]);
  // Short retention in some seeds: results expire during the run, and the sweeper runs.
  const retentionMs = rng.chance(0.25) ? SHORT_RETENTION_MS : RETENTION_MS;
  const clients: Client[] = [];
  const clientCount = 2 + rng.int(3);
  for (let i = 0; i < clientCount; i++) {
    // Mostly one hot scope, so clients meet; sometimes another principal or key.
    const principal = rng.chance(0.75) ? 'alice' : rng.pick(PRINCIPALS);
    const tenant = rng.chance(0.1) ? 'acme' : '';
    const key = rng.chance(0.75) ? 'k1' : rng.pick(KEYS);
    const body = rng.chance(0.15) ? '{"amount":999}' : '{"amount":1}';
    clients.push({
      id: i,
      tenant,
      principal,
      caller: `${tenant}/${principal}`,
      key,
      body,
      attemptsLeft: 2 + rng.int(4),
      duplicatesLeft: rng.chance(0.3) ? 1 : 0,
      outstanding: 0,
      done: false,
      readyAt: 0,
    });
  }

  function startInstance(): void {
    const id = instances.length;
    const conn = new Connection(store, id);
    const engine = createIdempotency({
      store: conn,
      secret: 'sim-secret-0123456789abcdef',
      leaseMs: LEASE_MS,
      retentionMs,
      storeTimeoutMs: STORE_TIMEOUT_MS,
      sweepIntervalMs: retentionMs === SHORT_RETENTION_MS ? 7_000 : 0,
      wait,
      failOpen: variant === 'fail-open',
      maxInFlightPerPrincipal: cap,
      principal: (_native, request) => headerValue(request.headers, 'x-principal'),
      tenant: (_native, request) => headerValue(request.headers, 'x-tenant'),
      onWarning() {},
    });
    instances.push({ id, engine, conn, dead: false, running: new Set(), attempts: new Set() });
  }

  function record(type: HistoryEvent['type'], a: Attempt, extra: Partial<HistoryEvent> = {}): void {
    const c = a.client;
    history.push({
      step,
      type,
      client: c.id,
      attempt: a.id,
      instance: a.instance.id,
      scope: scopeOf(c.tenant, c.principal, c.key),
      principal: c.caller,
      body: c.body,
      ...extra,
    });
  }

  let healing = false;

  function finishAttempt(a: Attempt, final: boolean): void {
    a.closed = true;
    a.instance.attempts.delete(a);
    a.client.outstanding--;
    if (final) a.client.done = true;
    // Once the faults heal, clients retry as a polite client does: a second later.
    else if (healing) a.client.readyAt = time.now + RETRY_AFTER_MS;
  }

  function respond(a: Attempt, response: EngineResponse, code: string, durable: boolean): void {
    if (a.closed) return;
    const answer: Answer = {
      status: response.status,
      replayed: headerOf(response, 'idempotent-replayed'),
      body: Buffer.from(response.body).toString('utf8'),
      code,
      durable,
    };
    const extra: Partial<HistoryEvent> = { answer };
    if (code === 'capacity') {
      let peers = 0;
      for (const other of a.instance.attempts)
        if (other !== a && other.client.caller === a.client.caller) peers++;
      extra.inFlightPeers = peers;
    }
    record('ok', a, extra);
    finishAttempt(a, isFinal(answer));
  }

  function gate(instance: Instance, label: string): Promise<void> {
    return new Promise((open) => gates.push({ instance, label, open }));
  }

  async function serve(a: Attempt): Promise<void> {
    const c = a.client;
    const inst = a.instance;
    const request: EngineRequest = {
      method: 'POST',
      path: PATH,
      query: '',
      headers: {
        'idempotency-key': c.key,
        'x-principal': c.principal,
        'x-tenant': c.tenant,
        'content-type': 'application/json',
      },
      body: Buffer.from(c.body),
    };
    let d: Decision;
    try {
      d = await inst.engine.begin(request);
    } catch (error) {
      problems.push(`engine begin() threw: ${String(error)}`);
      if (!a.closed) {
        record('fail', a, { reason: 'threw' });
        finishAttempt(a, false);
      }
      return;
    }
    if (d.kind === 'execute') inst.running.add(d);
    if (a.closed) return;
    if (d.kind === 'bypass') {
      // As an adapter does: the handler runs without idemkit (only `failOpen` gets here).
      const scope = scopeOf(c.tenant, c.principal, c.key);
      const exec: Execution = {
        id: executions.length + 1,
        instance: inst.id,
        attempt: a.id,
        scope,
        principal: c.caller,
        body: c.body,
        generation: 0,
        claimToken: -1,
        effect: true,
        downstreamKey: downstreamKeyFor(scope),
      };
      executions.push(exec);
      await gate(inst, 'bypassed handler');
      if (a.closed) return;
      const body = JSON.stringify({ principal: c.caller, body: c.body, exec: exec.id });
      respond(a, { status: 201, headers: [], body: Buffer.from(body) }, 'bypass', true);
      return;
    }
    if (d.kind !== 'execute') {
      respond(a, d.response, d.kind === 'reject' ? d.code : 'replay', true);
      return;
    }
    const ack = inst.conn.lastClaimAck;
    const matched = ack !== undefined && ack.key === d.key && ack.generation === d.ctx.fencingToken;
    const exec: Execution = {
      id: executions.length + 1,
      instance: inst.id,
      attempt: a.id,
      scope: d.key,
      principal: c.caller,
      body: c.body,
      generation: d.ctx.fencingToken,
      claimToken: matched ? ack.token : -1,
      effect: false,
    };
    executions.push(exec);
    await gate(inst, 'before effect');
    if (a.closed) return;
    let result: Awaited<ReturnType<ExecuteDecision['commit']>>;
    if (rng.chance(failBefore)) {
      inst.running.delete(d);
      result = await d.abort(new Error('sim: the handler failed before its effect'));
    } else {
      d.ctx.effectsStarted();
      exec.effect = true;
      exec.downstreamKey = d.ctx.downstreamKey();
      await gate(inst, 'before commit');
      if (a.closed) return;
      inst.running.delete(d);
      if (rng.chance(failAfter)) {
        result = await d.abort(new Error('sim: the handler failed after its effect'));
      } else {
        const body = JSON.stringify({ principal: c.caller, body: c.body, exec: exec.id });
        result = await d.commit({
          status: 201,
          headers: [['content-type', 'application/json']],
          body: Buffer.from(body),
        });
      }
    }
    respond(a, result.response, result.disposition, result.durable);
  }

  function send(c: Client, duplicate: boolean): void {
    const live = instances.filter((i) => !i.dead);
    const inst = rng.pick(live);
    const a: Attempt = { id: nextAttempt++, client: c, instance: inst, closed: false };
    if (duplicate) c.duplicatesLeft--;
    else c.attemptsLeft--;
    c.outstanding++;
    inst.attempts.add(a);
    record('invoke', a, duplicate ? { reason: 'duplicate' } : {});
    void serve(a);
  }

  function crash(inst: Instance): void {
    inst.dead = true;
    inst.conn.dead = true;
    for (const a of [...inst.attempts]) {
      record('fail', a, { reason: 'instance crashed' });
      finishAttempt(a, false);
    }
    // Its parked calls: some had reached the store, none is ever answered.
    const before = crashPoints.length;
    for (let i = store.parked.length - 1; i >= 0; i--) {
      const call = store.parked[i];
      if (call?.instance !== inst.id) continue;
      store.take(i);
      const applied = rng.chance(0.5);
      crashPoints.push(`${call.op} ${applied ? 'applied' : 'not applied'}`);
      if (applied) {
        call.deliver('hang');
        const entry = store.log[store.log.length - 1];
        if (entry) entry.answer = 'crashed';
      }
    }
    for (let i = gates.length - 1; i >= 0; i--) {
      const g = gates[i];
      if (g?.instance !== inst) continue;
      crashPoints.push(g.label);
      gates.splice(i, 1);
    }
    if (crashPoints.length === before) crashPoints.push('idle');
  }

  function deliveryMode(): Delivery {
    if (!rng.chance(faultRate)) return 'ack';
    return rng.pick(['fail', 'ack-lost', 'hang'] as const);
  }

  time.install();
  try {
    const first = 1 + rng.int(2);
    for (let i = 0; i < first; i++) startInstance();
    let crashes = 0;
    let jumps = 0;
    /**
     * Runs steps until no client has anything left to do, or `limit` steps. `healed`: the faults
     * are over (every store call is answered, no crash, no clock jump).
     */
    const phase = async (limit: number, healed: boolean): Promise<boolean> => {
      for (let taken = 0; taken < limit; taken++, step++) {
        await tick();
        const active = clients.some((c) => !c.done && (c.outstanding > 0 || c.attemptsLeft > 0));
        if (!active) return true;
        const live = instances.filter((i) => !i.dead);
        // Candidate actions and their weights; the scheduler picks one.
        const actions: (() => void)[] = [];
        const weights: number[] = [];
        const offer = (weight: number, action: () => void): void => {
          if (weight <= 0) return;
          actions.push(action);
          weights.push(weight);
        };
        store.parked.forEach((_, index) => {
          offer(3, () => store.take(index).deliver(healed ? 'ack' : deliveryMode()));
        });
        gates.forEach((g, index) => {
          offer(3, () => {
            gates.splice(index, 1);
            g.open();
          });
        });
        if (live.length > 0) {
          for (const c of clients) {
            if (c.done) continue;
            if (c.outstanding === 0 && c.attemptsLeft > 0 && c.readyAt <= time.now)
              offer(2, () => send(c, false));
            if (c.outstanding > 0 && c.duplicatesLeft > 0) offer(0.3, () => send(c, true));
          }
        }
        if (!healed) {
          offer(time.pending > 0 ? 1 : 0.2, () => time.advance(rng.pick([5, 60, 500, 2_500, 12_000])));
        } else if (store.parked.length === 0 && gates.length === 0) {
          // Healed, the network is prompt too: time passes only while nothing is in flight, and
          // never a whole store timeout at once.
          offer(1, () => time.advance(rng.pick([5, 60, 500, 1_000])));
        }
        if (!healed && jumps < 3) {
          offer(0.3, () => {
            jumps++;
            storeSkew += rng.pick([-3_000, 4_000, 11_000, 25_000]);
          });
        }
        if (!healed && crashes < 2 && live.length > 0) {
          offer(0.25, () => {
            crashes++;
            crash(rng.pick(live));
          });
        }
        if (instances.length < MAX_INSTANCES) offer(live.length === 0 ? 5 : healed ? 0 : 0.15, startInstance);
        const chosen = actions[rng.weighted(weights)];
        chosen?.();
      }
      return false;
    };
    if (!(await phase(MAX_STEPS, false))) problems.push(`the run did not settle within ${MAX_STEPS} steps`);
    // The faults heal; every client without a final answer retries until it gets one (I6).
    for (const c of clients) {
      if (c.done) continue;
      c.attemptsLeft = HEALED_ATTEMPTS;
      c.duplicatesLeft = 0;
    }
    healing = true;
    await phase(HEALED_STEPS, true);
    for (const c of clients) {
      if (!c.done) unresolved.push(`client ${c.id} (${c.caller} ${c.key} ${c.body})`);
    }

    const finalRecords = new Map<
      string,
      { state: string; status: number | undefined; body: string | undefined }
    >();
    for (const key of new Set(clients.map((c) => scopeOf(c.tenant, c.principal, c.key)))) {
      const r = await store.inner.get(key);
      if (r) {
        finalRecords.set(key, {
          state: r.state,
          status: r.response?.status,
          body: r.response ? Buffer.from(r.response.body).toString('utf8') : undefined,
        });
      }
    }
    const endStoreTime = store.now();
    await cleanUp(instances, store, time, problems);
    return {
      seed,
      variant,
      history,
      executions,
      storeLog: store.log,
      finalRecords,
      problems,
      unresolved,
      crashPoints,
      steps: step,
      cap,
      endStoreTime,
      retentionMs,
    };
  } finally {
    time.uninstall();
  }
}

/**
 * After the history is closed: every instance goes down, abandoned executions are aborted (so
 * they leave the engine's shared heartbeat schedule), and virtual time runs until no timer is
 * left, so the engine's module-level schedulers are idle before the next seed.
 */
async function cleanUp(
  instances: Instance[],
  store: SharedStore,
  time: VirtualTime,
  problems: string[],
): Promise<void> {
  for (const inst of instances) {
    inst.dead = true;
    inst.conn.dead = true;
  }
  store.parked.length = 0;
  for (const inst of instances) {
    for (const d of inst.running) void d.abort(new Error('sim: cleanup')).catch(() => {});
    inst.running.clear();
    await inst.engine.close();
  }
  for (let round = 0; round < 1_000; round++) {
    await tick();
    if (time.pending === 0) break;
    time.advance(5_000);
  }
  if (time.pending > 0)
    problems.push(`engine timers still pending after the run: ${time.describePending().join(', ')}`);
}

/** A digest of everything a run produced: equal for two runs of one seed on one commit. */
export function digestOf(run: RunResult): string {
  const { history, executions, storeLog, finalRecords, endStoreTime, problems, unresolved } = run;
  return createHash('sha256')
    .update(
      JSON.stringify([history, executions, storeLog, [...finalRecords], endStoreTime, problems, unresolved]),
    )
    .digest('hex');
}

function headerOf(response: EngineResponse, name: string): string | undefined {
  for (const [n, v] of response.headers) if (n.toLowerCase() === name) return v;
  return undefined;
}

/** An answer the client stops at: a result (original or replay) or a refusal a retry cannot change. */
function isFinal(answer: Answer): boolean {
  if (answer.status >= 200 && answer.status < 300) return true;
  return ['key-reused', 'outcome-uncertain', 'result-unavailable'].includes(answer.code);
}
