import { appendFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FaultWindow } from './checker.js';
import { files, monoMs } from './config.js';
import type { SutProcess } from './processes.js';
import type { StoreEnv } from './stores.js';

/*
 * The nemesis: one fault at a time, every `intervalMs`, the kinds the run enables in a seeded
 * shuffled order (each once per round); each is logged with its monotonic start and end (faults.jsonl) so every
 * violation traces to a cause. Faults: kill -9 of a SUT (its supervisor restarts it); SIGSTOP
 * for `pauseMs`; a store kill -9 and restart (private servers only); a SUT cut from its store
 * (proxy black hole or reset; for SQLite an injected outage of that SUT's store calls); +latency on a SUT's store link;
 * a SUT restarted under faketime ±30 s.
 */

export type FaultKind = 'kill' | 'pause' | 'store-restart' | 'cut' | 'latency' | 'skew';
export const ALL_FAULTS: readonly FaultKind[] = ['kill', 'pause', 'store-restart', 'cut', 'latency', 'skew'];

export interface NemesisOptions {
  dir: string;
  suts: SutProcess[];
  store: StoreEnv;
  kinds: readonly FaultKind[];
  intervalMs: number;
  pauseMs: number;
  cutMs: number;
  latencyMs: number;
  seed: number;
}

export type FaultCounts = Record<FaultKind, number>;

/** Runs faults until `until` (monotonic ms); resolves with the counts once the last one healed. */
export async function runNemesis(options: NemesisOptions, until: number): Promise<FaultCounts> {
  const counts: FaultCounts = { kill: 0, pause: 0, 'store-restart': 0, cut: 0, latency: 0, skew: 0 };
  const linked = options.suts.some((s) => options.store.proxy(s.settings.name) !== undefined);
  const kinds = options.kinds.filter(
    (k) => (k !== 'store-restart' || options.store.restartable) && (k !== 'latency' || linked),
  );
  let state = options.seed >>> 0 || 1;
  const random = () => {
    // xorshift32: reproducible from the logged seed.
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4_294_967_296;
  };
  const pick = <T>(list: readonly T[]) => list[Math.floor(random() * list.length)] as T;
  // Kinds come from a shuffled bag, refilled when empty: every kind once per round, in a random
  // order, so even a short run (a few faults under load) sees several kinds.
  let bag: FaultKind[] = [];
  const nextKind = (): FaultKind => {
    if (bag.length === 0) {
      bag = [...kinds];
      for (let i = bag.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [bag[i], bag[j]] = [bag[j] as FaultKind, bag[i] as FaultKind];
      }
    }
    return bag.pop() as FaultKind;
  };
  const log = (window: FaultWindow) =>
    appendFileSync(files.faults(options.dir), `${JSON.stringify(window)}\n`);

  while (kinds.length > 0 && monoMs() + options.intervalMs < until) {
    await sleep(options.intervalMs);
    const kind = nextKind();
    const sut = pick(options.suts);
    const start = monoMs();
    counts[kind]++;
    switch (kind) {
      case 'kill':
        await sut.kill9();
        await sut.settled();
        log({ kind: 'kill -9', target: sut.settings.name, start, end: monoMs() });
        break;
      case 'pause':
        sut.current?.signal('SIGSTOP');
        await sleep(options.pauseMs);
        sut.current?.signal('SIGCONT');
        log({ kind: 'SIGSTOP', target: sut.settings.name, start, end: monoMs() });
        break;
      case 'store-restart': {
        // Judged on the span the store was certainly down (stores.ts), not the whole restart.
        const down = await options.store.restart?.(options.cutMs);
        if (down)
          log({
            kind: 'store kill -9 + restart',
            target: '*',
            start: down.downFrom,
            end: down.downTo,
            storeDown: true,
          });
        break;
      }
      case 'cut': {
        const proxy = options.store.proxy(sut.settings.name);
        const mode = random() < 0.5 ? 'blackhole' : 'reset';
        if (proxy) proxy.fault({ kind: mode });
        // SQLite has no link to cut: the chosen SUT's store calls fail instead (one SUT, as a
        // cut from a network store is).
        else sut.current?.signal('SIGUSR1');
        await sleep(options.cutMs);
        if (proxy) proxy.heal();
        else sut.current?.signal('SIGUSR2');
        // An injected outage's window is the one the SUTs log (when the signal was handled).
        if (proxy)
          log({
            kind: `store cut (${mode})`,
            target: sut.settings.name,
            start,
            end: monoMs(),
            storeDown: true,
          });
        else log({ kind: 'store outage (injected)', target: sut.settings.name, start, end: monoMs() });
        break;
      }
      case 'latency': {
        const proxy = options.store.proxy(sut.settings.name);
        if (!proxy) {
          counts.latency--;
          break;
        }
        proxy.fault({ kind: 'latency', ms: options.latencyMs });
        await sleep(options.cutMs);
        proxy.heal();
        log({
          kind: `store latency +${options.latencyMs} ms`,
          target: sut.settings.name,
          start,
          end: monoMs(),
        });
        break;
      }
      case 'skew': {
        const shift = random() < 0.5 ? '+30s' : '-30s';
        const skewed = sut.skewedStarts;
        sut.nextFaketime = shift;
        await sut.kill9();
        await sut.settled();
        // A start under faketime that failed (no libfaketime) came back unskewed: not a skew.
        if (sut.skewedStarts === skewed) {
          counts.skew--;
          break;
        }
        log({ kind: `restart under faketime ${shift}`, target: sut.settings.name, start, end: monoMs() });
        break;
      }
    }
  }
  return counts;
}
