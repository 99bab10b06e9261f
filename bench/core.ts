/**
 * `npm run bench -- core [--requests 200000] [--tsx] [--src <dir>]`: the engine alone, in process, no HTTP: what
 * `begin()` + `commit()` cost per executed request and `begin()` per replay on the memory store,
 * next to the work a bare handler does anyway (parse the JSON body). Separates the engine's own
 * cost from the fetch adapter's Request/Response rebuilding, which the `engine` bench includes.
 */
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type * as Idemkit from '../src/index.js';
import { allocatedPerIteration } from './lib/allocation.js';
import { compileSources } from './lib/build.js';

const BODY = Buffer.from(JSON.stringify({ amount: 1000, currency: 'eur', customer: 'cus_0123456789' }));
/** Targets for the engine's own CPU per request (memory store, in process). */
const TARGET_EXECUTE_US = 10;
const TARGET_REPLAY_US = 5;
const HEADERS_BASE = { 'content-type': 'application/json', authorization: 'Bearer bench-user' };

export async function run(argv: readonly string[]): Promise<void> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      requests: { type: 'string', default: '200000' },
      // Measure the TypeScript source through tsx instead of what users run (tsc's output).
      tsx: { type: 'boolean', default: false },
      src: { type: 'string' },
    },
  });
  const n = Math.max(1_000, Number(values.requests));
  const srcDir = resolve(values.src ?? join(import.meta.dirname, '..', 'src'));
  let entry = join(srcDir, 'index.ts');
  if (!values.tsx) {
    const built = compileSources(srcDir);
    process.once('exit', built.remove);
    entry = join(built.dir, 'index.js');
  }
  const { createIdempotency, memoryStore } = (await import(pathToFileURL(entry).href)) as typeof Idemkit;
  const idem = createIdempotency({
    store: memoryStore({
      maxEntries: n + 70_000,
      maxEntriesPerPrincipal: n + 70_000,
      maxBytes: 4 * 1024 ** 3,
      onWarning() {},
    }),
    onWarning() {},
    sweepIntervalMs: 0,
  });
  const response = {
    status: 201,
    headers: [['content-type', 'application/json']] as [string, string][],
    body: BODY,
  };
  const request = (key: string) => ({
    method: 'POST',
    path: '/charges',
    query: '',
    headers: { ...HEADERS_BASE, 'idempotency-key': key },
    body: BODY,
  });

  const measure = async (label: string, work: (i: number) => Promise<void> | void) => {
    for (let i = 0; i < 5_000; i++) await work(-i - 1); // warm-up
    const cpu = process.cpuUsage();
    const started = performance.now();
    for (let i = 0; i < n; i++) await work(i);
    const wall = ((performance.now() - started) * 1_000) / n;
    const used = process.cpuUsage(cpu);
    const cpuUs = (used.user + used.system) / n;
    console.log(
      `  ${label.padEnd(44)} ${cpuUs.toFixed(2).padStart(8)} µs CPU  ${wall.toFixed(2).padStart(8)} µs wall`,
    );
    return cpuUs;
  };

  console.log(
    `engine core, memory store, ${n} requests each, in process; ${srcDir}${values.tsx ? ' through tsx' : ', compiled by tsc'}:`,
  );
  const parse = await measure('bare: JSON.parse of the body', () => {
    JSON.parse(BODY.toString('utf8'));
  });
  const execute = await measure('begin() + commit(), unique keys', async (i) => {
    const d = await idem.begin(request(`k-${i}`));
    if (d.kind !== 'execute')
      throw new Error(`expected execute, got ${d.kind}${d.kind === 'reject' ? ` ${d.code}` : ''}`);
    await d.commit(response);
  });
  const replay = await measure('begin() on a completed key (replay)', async () => {
    const d = await idem.begin(request('k-0'));
    if (d.kind !== 'replay') throw new Error(`expected replay, got ${d.kind}`);
  });
  // Allocation per request: the collector's work follows it, and it holds still on a busy machine.
  const allocations = Math.min(n, 50_000);
  const allocExecute = await allocatedPerIteration(allocations, async (i) => {
    const d = await idem.begin(request(`a-${i}`));
    if (d.kind !== 'execute') throw new Error(`expected execute, got ${d.kind}`);
    await d.commit(response);
  });
  const allocReplay = await allocatedPerIteration(allocations, async (i) => {
    const d = await idem.begin(request(`a-${i}`));
    if (d.kind !== 'replay') throw new Error(`expected replay, got ${d.kind}`);
  });
  const allocBare = await allocatedPerIteration(allocations, (i) => {
    request(`a-${i}`); // the bench's own request object, made for every iteration above too
  });
  console.log(
    `  allocated per executed request ${(allocExecute - allocBare).toFixed(0)} B, per replay ${(allocReplay - allocBare).toFixed(0)} B (sampled, garbage included; the bench's own request object subtracted)`,
  );
  const verdict = (value: number, target: number) => (value <= target ? 'PASS' : 'MISS');
  console.log(
    `\n  engine CPU per executed request: ${execute.toFixed(1)} µs, ${(execute / parse).toFixed(0)}× a bare JSON parse; target ≤ ${TARGET_EXECUTE_US} µs: ${verdict(execute, TARGET_EXECUTE_US)}`,
  );
  console.log(
    `  engine CPU per replay: ${replay.toFixed(1)} µs, ${(replay / parse).toFixed(0)}× a bare JSON parse; target ≤ ${TARGET_REPLAY_US} µs: ${verdict(replay, TARGET_REPLAY_US)}`,
  );
  await idem.close();
}
