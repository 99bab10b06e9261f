/**
 * The mock downstream (a payment provider): `POST /apply {downstreamKey, scope, exec}` applies
 * an effect once per downstreamKey — UNIQUE(downstream_key) — and answers a repeat with the first
 * effect's charge id. Every applied effect and every refused repeat is appended to a JSONL file
 * (it survives anything), which is what the checker counts as effective executions. It is never
 * faulted. Env: CHAOS_DOWNSTREAM = { dir, latencyMs }; prints `READY <port>`.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { files, monoMs, serveUntilTerm } from './config.js';

const { dir, latencyMs } = JSON.parse(process.env.CHAOS_DOWNSTREAM ?? '{}') as {
  dir: string;
  latencyMs: number;
};
const file = files.downstream(dir);
const charges = new Map<string, string>();
if (existsSync(file)) {
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    const entry = JSON.parse(line) as { applied: boolean; downstreamKey: string; charge: string };
    if (entry.applied) charges.set(entry.downstreamKey, entry.charge);
  }
}
let next = charges.size;

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    const { downstreamKey, scope, exec } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<
      string,
      string
    >;
    const key = String(downstreamKey);
    const existing = charges.get(key);
    const applied = existing === undefined;
    const charge = existing ?? `ch_${++next}`;
    if (applied) charges.set(key, charge);
    appendFileSync(
      file,
      `${JSON.stringify({ applied, downstreamKey: key, scope, exec, charge, t: monoMs() })}\n`,
    );
    const answer = () =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ applied, charge }));
    if (latencyMs > 0) setTimeout(answer, latencyMs);
    else answer();
  });
});
server.keepAliveTimeout = 30_000;
serveUntilTerm(server);
