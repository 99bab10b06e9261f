import { DEFAULTS } from './options.js';
import { unrefTimer } from './portable.js';
import type { EngineRuntime } from './runtime.js';

/** At most this many batches per tick, so a huge backlog never monopolises the store. */
const MAX_BATCHES_PER_TICK = 10;

/**
 * Deletes expired records every `sweepIntervalMs` (unref'd: it never keeps the process alive).
 * Returns the function that stops it, or `undefined` when sweeping is off.
 */
export function startSweeper(rt: EngineRuntime): (() => void) | undefined {
  const intervalMs = rt.options.sweepIntervalMs;
  if (intervalMs <= 0) return undefined;
  const timer = setInterval(() => void sweep(rt), intervalMs);
  unrefTimer(timer);
  return () => clearInterval(timer);
}

async function sweep(rt: EngineRuntime): Promise<void> {
  try {
    for (let round = 0; round < MAX_BATCHES_PER_TICK; round++) {
      if ((await rt.store.sweep(DEFAULTS.sweepBatch)) < DEFAULTS.sweepBatch) return;
    }
  } catch (error) {
    rt.emit({ type: 'store-error', operation: 'sweep', error });
  }
}
