import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { serveFetch } from '../../src/testing/serve-fetch.js';
import { startCli } from '../support/cli.js';

/*
 * The deployment docs/opentelemetry.md describes, end to end: `idemkit gateway --otel` as a
 * child process with an SDK preloaded through NODE_OPTIONS. Its spans leave the process (here as
 * JSON to a listener on 127.0.0.1, where an OTLP exporter would send them to a collector).
 */

interface ReceivedSpan {
  name: string;
  spanId: string;
  parentSpanId?: string;
  attributes: Record<string, unknown>;
}

const PRELOAD = fileURLToPath(new URL('../support/otel-preload.mjs', import.meta.url));
const received: ReceivedSpan[] = [];
let receiverUrl = '';
let upstreamUrl = '';
const closers: (() => Promise<void>)[] = [];

before(async () => {
  const receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      received.push(...(JSON.parse(Buffer.concat(chunks).toString('utf8')) as ReceivedSpan[]));
      res.end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  closers.push(() => new Promise<void>((resolve) => receiver.close(() => resolve())));
  const upstream = await serveFetch(() => Response.json({ id: 'ch_1' }, { status: 201 }));
  upstreamUrl = upstream.url;
  closers.push(() => upstream.close());
});
after(async () => {
  for (const close of closers) await close();
});

/** Starts the gateway CLI with the SDK preloaded; `flags` add to the usual ones. */
async function gateway(flags: string[]) {
  const cli = startCli(
    [
      'gateway',
      '--upstream',
      upstreamUrl,
      '--port',
      '0',
      '--admin-port',
      '0',
      '--store',
      'memory:',
      ...flags,
    ],
    { NODE_OPTIONS: `--import ${PRELOAD}`, OTEL_TEST_RECEIVER: receiverUrl },
  );
  after(async () => {
    if (cli.child.exitCode === null) cli.child.kill('SIGTERM');
    await cli.exited;
  });
  const listening = await cli.waitForLog('idemkit gateway listening');
  return listening.url as string;
}

const post = (url: string, key: string) =>
  fetch(`${url}/charges`, {
    method: 'POST',
    headers: { 'idempotency-key': key, authorization: 'Bearer otel-cli' },
    body: '{}',
  });

/** Waits (at most 5 s) until `count` request spans have arrived. */
async function requestSpans(count: number): Promise<ReceivedSpan[]> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const requests = received.filter((s) => s.name === 'idemkit.request');
    if (requests.length >= count || Date.now() > deadline) return requests;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('idemkit gateway --otel (child process, SDK preloaded)', () => {
  it('exports a request span per keyed request, with its store calls as children', async () => {
    received.length = 0;
    const url = await gateway(['--otel']);
    const raw = 'otel-cli-raw-key-61d0';
    assert.equal((await post(url, raw)).status, 201);
    assert.equal((await post(url, raw)).headers.get('idempotent-replayed'), 'true');

    const requests = await requestSpans(2);
    assert.deepEqual(
      requests.map((s) => s.attributes['idemkit.outcome']),
      ['execute', 'replay'],
    );
    const [executed] = requests as [ReceivedSpan];
    const children = received.filter((s) => s.parentSpanId === executed.spanId).map((s) => s.name);
    assert.deepEqual(children, ['idemkit.store claim', 'idemkit.store complete']);
    assert.ok(!JSON.stringify(received).includes(raw), 'the raw key leaves the process in no span');
  });

  it('without --otel the same preloaded SDK receives no idemkit spans', async () => {
    received.length = 0;
    const url = await gateway([]);
    assert.equal((await post(url, 'otel-cli-off')).status, 201);
    // A span would arrive within milliseconds of the response; give it ample time.
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(
      received.map((s) => s.name),
      [],
    );
  });
});
