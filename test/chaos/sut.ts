/**
 * The server under test (docs/guarantees.md T53, T54): node:http with idemkit's fetch flow
 * (`engine.handle`, what `idemkit/fetch` runs) on a real store. `POST /pay` appends to the
 * ledger, then calls the mock downstream with `downstreamKey()`; in transactional mode the effect
 * is a row written in the record's own PostgreSQL transaction. Settings come as JSON in
 * CHAOS_SUT (SutSettings) and CHAOS_ARMS (crash arms); prints `READY <port>` when listening.
 *
 * Query parameters of /pay: `ms` sleeps before the effect (long enough for heartbeats), `fail`
 * (`pre` throws before the effect, `post` after effectsStarted()) applies only to an attempt that
 * carries `x-chaos-fail: 1`, so the fingerprint stays the same across a client's attempts.
 * SIGUSR1 starts an injected store outage, SIGUSR2 ends it; SIGTERM shuts down cleanly.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { readNodeBody } from '../../src/adapters/node-http.js';
import { createIdempotency, type HandlerContext } from '../../src/index.js';
import type { PostgresTransactionClient } from '../../src/stores/postgres.js';
import { AUTH_PREFIX, PAY_PATH, type SutSettings } from './config.js';
import { type CrashArm, crasher, requestKey } from './crash.js';
import { openSutHarness } from './sut-common.js';

const settings = JSON.parse(process.env.CHAOS_SUT ?? '{}') as SutSettings;
const arms = JSON.parse(process.env.CHAOS_ARMS ?? '[]') as CrashArm[];
const crash = crasher(settings.dir, arms);
const { ledger, backend, instrumented, onEvent } = openSutHarness(settings, crash);
const transactional = settings.store.kind === 'pg-txn';
const engine = createIdempotency({
  store: instrumented.store,
  secret: 'chaos-harness-secret-0123456789abcdef',
  leaseMs: settings.leaseMs,
  storeTimeoutMs: settings.storeTimeoutMs,
  transactional,
  sweepIntervalMs: 0,
  // A custom header the route replays (the allowlist is part of what I3 compares).
  replayHeaders: ['x-charge'],
  onWarning() {},
  onEvent,
});

const principalOf = (request: Request) =>
  (request.headers.get('authorization') ?? '').slice(AUTH_PREFIX.length) || 'anonymous';

async function pay(request: Request, ctx?: HandlerContext): Promise<Response> {
  const url = new URL(request.url);
  const key = request.headers.get('idempotency-key') ?? '';
  const principal = principalOf(request);
  const body = new Uint8Array(await request.arrayBuffer());
  const bodySha = createHash('sha256').update(body).digest('hex');
  const failing = request.headers.get('x-chaos-fail') === '1' ? url.searchParams.get('fail') : null;
  const ms = Number(url.searchParams.get('ms') ?? 0);
  if (ms > 0) await sleep(ms);
  crash.pass('handler:beforeEffect');
  if (failing === 'pre') throw new Error('chaos: failure before the effect');
  // A handler that checks its signal stops here when its lease was lost (F2).
  if (ctx?.signal.aborted) throw new Error('chaos: lease lost before the effect');
  const exec = randomUUID();
  const generation = ctx?.fencingToken ?? 0;
  ledger({ ev: 'exec', key, principal, bodySha, exec, generation });
  ctx?.effectsStarted();
  crash.pass('handler:afterEffectsStarted');
  if (failing === 'post') throw new Error('chaos: failure after effects started');
  let charge: string;
  if (transactional) {
    const tx = ctx?.transaction as PostgresTransactionClient;
    const spec = settings.store as { effects: string };
    await tx.query(`INSERT INTO "${spec.effects}" (scope, exec, pid, generation) VALUES ($1, $2, $3, $4)`, [
      `${principal}|${key}`,
      exec,
      process.pid,
      generation,
    ]);
    charge = `row-${exec.slice(0, 8)}`;
  } else {
    // Without idemkit there is no stable key: a fresh one per execution (the negative control).
    const downstreamKey = ctx ? ctx.downstreamKey() : `random-${exec}`;
    const answer = await fetch(`${settings.downstreamUrl}/apply`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ downstreamKey, scope: `${principal}|${key}`, exec }),
    });
    const applied = (await answer.json()) as { applied: boolean; charge: string };
    charge = applied.charge;
  }
  ledger({ ev: 'effect', key, principal, exec, generation });
  crash.pass('handler:afterEffect');
  return Response.json(
    { principal, key, charge, amount: JSON.parse(new TextDecoder().decode(body)).amount },
    {
      status: 201,
      headers: { 'x-charge': charge },
    },
  );
}

async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await readNodeBody(req, 1_048_576);
  const key = String(req.headers['idempotency-key'] ?? '');
  await requestKey.run(key, async () => {
    crash.pass('request:afterBody');
    const request = new Request(`http://sut${req.url ?? '/'}`, {
      method: req.method ?? 'GET',
      headers: Object.entries(req.headers).flatMap(([name, value]) =>
        value === undefined
          ? []
          : Array.isArray(value)
            ? value.map((v) => [name, v] as [string, string])
            : [[name, value] as [string, string]],
      ),
      ...(body && body.byteLength > 0 ? { body: body as Uint8Array<ArrayBuffer> } : {}),
    });
    const route = new URL(request.url).pathname;
    if (route !== PAY_PATH) {
      res.writeHead(404).end();
      return;
    }
    const response = settings.idempotency
      ? await engine.handle(request, pay)
      : await pay(request).catch(() => new Response('{"error":"handler failed"}', { status: 500 }));
    await write(res, response);
  });
}

/** Writes the answer with the crash points of the response write between its parts. */
async function write(res: ServerResponse, response: Response): Promise<void> {
  const payload = Buffer.from(await response.arrayBuffer());
  crash.pass('response:beforeHeaders');
  const headers: [string, string][] = [...response.headers].filter(([name]) => name !== 'content-length');
  res.writeHead(response.status, [...headers.flat(), 'content-length', String(payload.length)]);
  res.flushHeaders();
  await new Promise<void>((resolve) => res.write('', () => resolve()));
  crash.pass('response:afterHeaders');
  const half = Math.floor(payload.length / 2);
  await new Promise<void>((resolve) => res.write(payload.subarray(0, half), () => resolve()));
  crash.pass('response:midBody');
  res.end(payload.subarray(half));
}

const server = createServer((req, res) => {
  serve(req, res).catch((error: unknown) => {
    ledger({ ev: 'sut-error', message: String(error) });
    if (!res.headersSent) res.writeHead(500).end();
    else res.destroy();
  });
});
server.keepAliveTimeout = 30_000;
server.listen(settings.port, '127.0.0.1', () => {
  ledger({ ev: 'start' });
  process.stdout.write(`READY ${settings.port}\n`);
});
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  void engine
    .close()
    .then(() => backend.close())
    .finally(() => process.exit(0));
});
