/**
 * The app behind the gateway SUTs (T54 with `sut: 'gateway'`): one process the gateways forward
 * covered requests to, never faulted (like the downstream). `POST /pay` does what `pay()` in
 * sut.ts does, without idemkit: it applies the effect through the mock downstream under the
 * `Idempotency-Key` the gateway forwards (the derived downstream key), then answers 201 JSON
 * `{principal, key, charge, amount}` with `x-charge`. The principal is the forwarded
 * Authorization header, the client key the body's `note` field (the gateway does not forward the
 * client's key). The gateway names the execution in `x-chaos-exec` (sut-gateway.ts: its SUT name,
 * pid, claim generation and an execution id); this process writes the `exec` entry (on receipt)
 * and the `effect` entry in that name, so the checker joins them to the gateway's claim (I9).
 *
 * Query parameters: `ms` sleeps before the effect; `fail` (`pre`: before anything, `post`: after
 * "effects started", nothing applied) answers 500, only for a request with `x-chaos-fail: 1`.
 * The gateway holds any 5xx its upstream answered as `uncertain` (upstream-outcome.ts), so both
 * hold the key. With `idempotency: false` (the negative control: the gateway covers nothing) each
 * execution applies under a fresh downstream key. Env CHAOS_UPSTREAM: UpstreamSettings; prints
 * `READY <port>`.
 */
import { createHash, randomUUID } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AUTH_PREFIX,
  EXEC_HEADER,
  files,
  monoMs,
  PAY_PATH,
  serveUntilTerm,
  type UpstreamSettings,
} from './config.js';

const settings = JSON.parse(process.env.CHAOS_UPSTREAM ?? '{}') as UpstreamSettings;
const ledgerFile = files.ledger(settings.dir, 'upstream');
const ledger = (entry: Record<string, unknown>) =>
  appendFileSync(ledgerFile, `${JSON.stringify({ upstreamPid: process.pid, t: monoMs(), ...entry })}\n`);

const header = (req: IncomingMessage, name: string): string => {
  const value = req.headers[name];
  return Array.isArray(value) ? (value[0] ?? '') : (value ?? '');
};

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function pay(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://upstream');
  const raw = await readBody(req);
  const body = JSON.parse(raw.toString('utf8')) as { amount: number; note: string };
  const principal = header(req, 'authorization').slice(AUTH_PREFIX.length) || 'anonymous';
  const key = body.note;
  // `<sut> <pid> <generation> <exec>`, set by the gateway SUT when it forwarded the request.
  const [sut = '', pid = '0', generation = '0', exec = randomUUID()] = header(req, EXEC_HEADER).split(' ');
  const failing = header(req, 'x-chaos-fail') === '1' ? url.searchParams.get('fail') : null;
  const ms = Number(url.searchParams.get('ms') ?? 0);
  if (ms > 0) await sleep(ms);
  const fail = () => {
    res.writeHead(500, { 'content-type': 'application/json' }).end(`{"error":"chaos: failure ${failing}"}`);
  };
  if (failing === 'pre') return fail();
  // The execution, in the name of the gateway process and claim that forwarded it.
  const bodySha = createHash('sha256').update(raw).digest('hex');
  const origin = { sut, pid: Number(pid), generation: Number(generation), exec };
  ledger({ ev: 'exec', key, principal, bodySha, ...origin });
  if (failing === 'post') return fail();
  const forwardedKey = header(req, 'idempotency-key');
  if (settings.idempotency && !forwardedKey.startsWith('idemkit-'))
    throw new Error(`no derived Idempotency-Key forwarded for ${principal}|${key}`);
  // Without idemkit there is no stable key: a fresh one per execution (the negative control).
  const downstreamKey = settings.idempotency ? forwardedKey : `random-${exec}`;
  const answer = await fetch(`${settings.downstreamUrl}/apply`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ downstreamKey, scope: `${principal}|${key}`, exec }),
  });
  const applied = (await answer.json()) as { applied: boolean; charge: string };
  ledger({ ev: 'effect', key, principal, ...origin });
  const payload = JSON.stringify({ principal, key, charge: applied.charge, amount: body.amount });
  res
    .writeHead(201, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(payload),
      'x-charge': applied.charge,
    })
    .end(payload);
}

const server = createServer((req, res) => {
  const route = new URL(req.url ?? '/', 'http://upstream').pathname;
  if (req.method !== 'POST' || route !== PAY_PATH) {
    req.resume();
    res.writeHead(404).end();
    return;
  }
  pay(req, res).catch((error: unknown) => {
    ledger({ ev: 'upstream-error', message: String(error) });
    if (!res.headersSent) res.writeHead(500).end();
    else res.destroy();
  });
});
// Longer than the gateway pool's 30 s keep-alive: the gateway, not this side, closes idle
// connections, so a forwarded request never meets a connection this side is closing (which the
// gateway would rightly count as "may have run" and hold the key).
server.keepAliveTimeout = 65_000;
server.headersTimeout = 70_000;
serveUntilTerm(server);
