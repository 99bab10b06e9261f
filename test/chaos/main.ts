/**
 * `npm run chaos -- --minutes 20 --store postgres|redis|sqlite|pg-txn|dynamodb [--sut app|gateway]`
 * — the full chaos run (T54) for one store, or every store when --store is absent (the gateway has
 * no transactional mode: with --sut gateway, pg-txn is left out): a fault-free baseline (a fifth
 * of the time, at most 5 minutes), then the faulted phase, the final phase and the checker's card.
 * Exits 1 on any violation. Other flags: --seconds N (instead of --minutes), --seed N, --workers
 * N, --suts N, --attempt-timeout-ms N (default 2000), --eject-ms N (how long a client passes over
 * a server that failed it; default 3000, 0 for strict rotation), --keep (keep the JSONL files), --no-idempotency and --no-fencing (the negative
 * controls: they must report violations).
 */
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { formatCard, violationTotal } from './card.js';
import { type ChaosStoreKind, STORE_KINDS, SUT_KINDS, type SutKind } from './config.js';
import { CHAOS_DEFAULTS, runChaos } from './run.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string' },
    seconds: { type: 'string' },
    store: { type: 'string' },
    sut: { type: 'string' },
    seed: { type: 'string' },
    workers: { type: 'string' },
    suts: { type: 'string' },
    keep: { type: 'boolean' },
    'attempt-timeout-ms': { type: 'string' },
    'eject-ms': { type: 'string' },
    'no-idempotency': { type: 'boolean' },
    'no-fencing': { type: 'boolean' },
  },
});
const totalMs = values.seconds ? Number(values.seconds) * 1000 : Number(values.minutes ?? 20) * 60_000;
const sut = (values.sut ?? 'app') as SutKind;
if (!SUT_KINDS.includes(sut)) throw new Error(`--sut: one of ${SUT_KINDS.join(', ')}`);
const stores = values.store
  ? [values.store as ChaosStoreKind]
  : STORE_KINDS.filter((s) => sut === 'app' || s !== 'pg-txn');
for (const store of stores) {
  if (!STORE_KINDS.includes(store)) throw new Error(`--store: one of ${STORE_KINDS.join(', ')}`);
  if (sut === 'gateway' && store === 'pg-txn')
    throw new Error('--sut gateway has no transactional mode: use --store postgres, not pg-txn');
}
const commit = (() => {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
})();

let failed = 0;
for (const store of stores) {
  const baselineMs = Math.min(Math.round(totalMs / 5), 300_000);
  const result = await runChaos({
    ...CHAOS_DEFAULTS,
    store,
    sut,
    baselineMs,
    faultMs: totalMs - baselineMs,
    suts: Number(values.suts ?? (store === 'sqlite' ? 4 : CHAOS_DEFAULTS.suts)),
    workers: Number(values.workers ?? CHAOS_DEFAULTS.workers),
    attemptTimeoutMs: Number(values['attempt-timeout-ms'] ?? CHAOS_DEFAULTS.attemptTimeoutMs),
    ejectMs: Number(values['eject-ms'] ?? CHAOS_DEFAULTS.ejectMs),
    seed: Number(values.seed ?? Date.now() % 1_000_000),
    idempotency: !values['no-idempotency'],
    fencing: !values['no-fencing'],
    keep: values.keep ?? false,
    onProgress: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`${formatCard(result, commit)}\n${values.keep ? `files: ${result.dir}\n` : ''}\n`);
  if (violationTotal(result) > 0) failed++;
}
process.exit(failed > 0 ? 1 : 0);
