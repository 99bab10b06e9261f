import { AsyncLocalStorage } from 'node:async_hooks';
import { appendFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/*
 * Crash points (T53) without a hook in src/core: the SUT names the await points it can reach
 * from the engine's seams (a store decorator, the handler, the response write) and SIGKILLs
 * itself at an armed one. An arm names a point, the client key it applies to, and which passes
 * kill (1 = the first time any process of the run passes the point for that key, 2 = the
 * second, …). Passes are counted in a file per arm, so a restarted SUT continues the count.
 */

export interface CrashArm {
  point: string;
  /** The client's Idempotency-Key this arm applies to. */
  key: string;
  hits: readonly number[];
}

/** Every point a SUT can crash at, in pipeline order; the card lists them. */
export const CRASH_POINTS = [
  { point: 'request:afterBody', seam: 'node:http', where: 'body read, before the engine is called' },
  { point: 'claim:before', seam: 'store', where: 'key parsed and fingerprinted, claim not sent' },
  { point: 'claim:after', seam: 'store', where: 'claim applied by the store, not acknowledged' },
  { point: 'handler:beforeEffect', seam: 'handler', where: 'claim held, nothing done' },
  { point: 'heartbeat:before', seam: 'store', where: 'lease renewal about to be sent' },
  { point: 'heartbeat:after', seam: 'store', where: 'lease renewed, not acknowledged' },
  {
    point: 'handler:afterEffectsStarted',
    seam: 'handler',
    where: 'effectsStarted() called, effect not sent',
  },
  { point: 'handler:afterEffect', seam: 'handler', where: 'effect applied downstream, result not stored' },
  { point: 'release:before', seam: 'store', where: 'a failed attempt about to free the key' },
  { point: 'release:after', seam: 'store', where: 'key freed, not acknowledged' },
  { point: 'markUncertain:before', seam: 'store', where: 'a failure after effects, hold not sent' },
  { point: 'markUncertain:after', seam: 'store', where: 'held uncertain, not acknowledged' },
  { point: 'complete:before', seam: 'store', where: 'result about to be stored' },
  { point: 'complete:after', seam: 'store', where: 'result stored, not acknowledged' },
  { point: 'commit:before', seam: 'store (transactional)', where: 'handler rows written, COMMIT not sent' },
  { point: 'commit:after', seam: 'store (transactional)', where: 'COMMIT landed, not acknowledged' },
  { point: 'response:beforeHeaders', seam: 'node:http', where: 'answer decided and durable, nothing sent' },
  { point: 'response:afterHeaders', seam: 'node:http', where: 'status line and headers sent, no body' },
  { point: 'response:midBody', seam: 'node:http', where: 'half of the body sent' },
] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number]['point'];

/** The client key of the request whose async context this is (set by the SUT's HTTP handler). */
export const requestKey = new AsyncLocalStorage<string>();

export interface Crasher {
  /** Passes `point` for `key` (default: the current request's key); may not return. */
  pass(point: CrashPoint, key?: string): void;
}

export function crasher(dir: string, arms: readonly CrashArm[]): Crasher {
  if (arms.length === 0) return { pass() {} };
  return {
    pass(point, key = requestKey.getStore()) {
      if (key === undefined) return;
      arms.forEach((arm, index) => {
        if (arm.point !== point || arm.key !== key) return;
        const counter = join(dir, `crash-hits-${index}`);
        appendFileSync(counter, 'x');
        if (arm.hits.includes(statSync(counter).size)) {
          appendFileSync(join(dir, 'crashes.jsonl'), `${JSON.stringify({ point, key, pid: process.pid })}\n`);
          process.kill(process.pid, 'SIGKILL');
        }
      });
    },
  };
}
