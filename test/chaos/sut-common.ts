import { appendFileSync } from 'node:fs';
import type { IdempotencyEvent } from '../../src/core/events.js';
import { files, monoMs, type SutSettings } from './config.js';
import type { Crasher } from './crash.js';
import { openBackend } from './sut-backend.js';
import { instrumentStore } from './sut-store.js';

/**
 * What both kinds of SUT process (sut.ts, sut-gateway.ts) set up the same way: the execution
 * ledger, the store opened and instrumented (store-call log for I8 and I9, crash points, the
 * injected outage, `fencing: false`), SIGUSR1/SIGUSR2 starting and ending the injected outage,
 * and the engine events the checker reads from the ledger.
 */
export function openSutHarness(settings: SutSettings, crash: Crasher) {
  const ledgerFile = files.ledger(settings.dir, settings.name);
  const ledger = (entry: Record<string, unknown>) =>
    appendFileSync(
      ledgerFile,
      `${JSON.stringify({ ...entry, sut: settings.name, pid: process.pid, t: monoMs() })}\n`,
    );
  const backend = openBackend(settings.store, settings.storeTimeoutMs);
  const instrumented = instrumentStore(backend.store, {
    logFile: files.storeOps(settings.dir, settings.name),
    sut: settings.name,
    crash,
    fencing: settings.fencing,
  });
  // The SUT logs when its outage really began and ended: the checker's I9 windows.
  process.on('SIGUSR1', () => {
    instrumented.injectOutage();
    ledger({ ev: 'outage-on' });
  });
  process.on('SIGUSR2', () => {
    instrumented.restore();
    ledger({ ev: 'outage-off' });
  });
  /** Answers sent non-durable, their background writes, lost leases: what I3 and I7 excuse. */
  const onEvent = (event: IdempotencyEvent): void => {
    if (event.type === 'non-durable' || event.type === 'flushed' || event.type === 'lease-lost')
      ledger({ ev: event.type, storeKey: event.key });
  };
  return { ledger, backend, instrumented, onEvent };
}
