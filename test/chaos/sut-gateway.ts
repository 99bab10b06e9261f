/**
 * The gateway as server under test (T54 with `sut: 'gateway'`): `idemkit gateway`
 * (`startGateway`) on a real store, in front of the shared upstream app (sut-upstream.ts). The
 * store is opened and instrumented exactly as sut.ts does (store-call log for I8 and I9, the
 * injected outage, `fencing: false`), the principal is the Authorization header (hashed: the same
 * store keys as the app SUT, see `storeKeyOf`), and the upstream gets the derived key
 * (`forwardKey: 'derived'`) it applies its effect under. Same CHAOS_SUT settings, `READY <port>`,
 * SIGUSR1/SIGUSR2 and SIGTERM as sut.ts.
 *
 * The execution ledger: the gateway is a closed box between its claim and its forward, so this
 * process tags every request it forwards, at the moment undici creates it (diagnostics channel
 * `undici:request:create`, no hook in src/), with `x-chaos-exec: <sut> <pid> <generation> <exec>`;
 * the generation is that of the last claim this process acquired for the store key whose derived
 * key the request carries. The upstream writes the `exec` and `effect` entries from that tag and
 * what it received (principal, client key, body hash), so the checker joins each execution to
 * this process's claim as for the app SUT (I9). `idempotency: false` (the negative control) covers
 * no method: a pure proxy, every forward an execution without a claim.
 */
import { randomUUID } from 'node:crypto';
import { subscribe } from 'node:diagnostics_channel';
import { downstreamKeyFor } from '../../src/core/scope.js';
import { startGateway } from '../../src/gateway/server.js';
import { GATEWAY_DEFAULTS, type GatewayConfig } from '../../src/gateway/types.js';
import type { IdempotencyStore } from '../../src/index.js';
import { EXEC_HEADER, PAY_PATH, type SutSettings } from './config.js';
import { crasher } from './crash.js';
import { openSutHarness } from './sut-common.js';

const settings = JSON.parse(process.env.CHAOS_SUT ?? '{}') as SutSettings;
if (settings.store.kind === 'pg-txn')
  throw new Error('the gateway SUT has no transactional mode: its effects happen upstream (use postgres)');
if (!settings.upstreamUrl) throw new Error('the gateway SUT needs settings.upstreamUrl');
const upstreamUrl = settings.upstreamUrl;
const { ledger, backend, instrumented, onEvent } = openSutHarness(settings, crasher(settings.dir, []));

/** Derived key → generation of the last claim this process acquired for its store key. */
const generations = new Map<string, number>();
const store: IdempotencyStore = {
  ...instrumented.store,
  async claim(request) {
    const result = await instrumented.store.claim(request);
    if (result.outcome === 'acquired') generations.set(downstreamKeyFor(request.key), result.generation);
    return result;
  },
};

interface UndiciRequest {
  origin: string | URL;
  headers: (string | string[])[];
  addHeader(name: string, value: string): unknown;
}

const upstreamOrigin = new URL(upstreamUrl).origin;
subscribe('undici:request:create', (message) => {
  const request = (message as { request: UndiciRequest }).request;
  if (new URL(String(request.origin)).origin !== upstreamOrigin) return;
  try {
    let derived = '';
    for (let i = 0; i + 1 < request.headers.length; i += 2) {
      if (String(request.headers[i]).toLowerCase() === 'idempotency-key')
        derived = String(request.headers[i + 1]);
    }
    // No known claim (a pure proxy): generation 0, judged at the moment of the forward (I9).
    const generation = generations.get(derived) ?? 0;
    request.addHeader(EXEC_HEADER, `${settings.name} ${process.pid} ${generation} ${randomUUID()}`);
  } catch (error) {
    ledger({ ev: 'sut-error', message: `tagging a forward: ${String(error)}` });
  }
});

const config: GatewayConfig = {
  ...GATEWAY_DEFAULTS,
  upstream: upstreamUrl,
  host: '127.0.0.1',
  port: settings.port,
  adminPort: 0,
  leaseMs: settings.leaseMs,
  storeTimeoutMs: settings.storeTimeoutMs,
  // The same secret as the app SUT (the store key does not depend on it; the fingerprint does).
  secret: 'chaos-harness-secret-0123456789abcdef',
  principalHeader: 'authorization',
  forwardKey: 'derived',
  replayHeaders: ['x-charge'],
  // The negative control: /pay covers no method, every request streams through untouched.
  routes: settings.idempotency ? [] : [{ path: PAY_PATH, methods: [] }],
  drainMs: 1_000,
  logLevel: 'silent',
};

const gateway = await startGateway({
  config,
  store,
  engine: { sweepIntervalMs: 0, onWarning() {} },
  onEvent,
});

ledger({ ev: 'start' });
process.stdout.write(`READY ${settings.port}\n`);
process.on('SIGTERM', () => {
  void gateway
    .close()
    .then(() => backend.close())
    .finally(() => process.exit(0));
});
