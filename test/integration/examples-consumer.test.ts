import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import amqp from 'amqplib';
import { startWorker as startNatsWorker } from '../../examples/consumer/nats-worker.js';
import {
  type LedgerEntry,
  startWorker as startRabbitWorker,
} from '../../examples/consumer/rabbitmq-worker.js';
import { sqliteStore } from '../../src/stores/sqlite.js';
import { startExample, stopExample } from '../support/example-process.js';
import { loadNats } from '../support/nats-client.js';

const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const NATS_URL = process.env.NATS_URL ?? '127.0.0.1:4222';

/** Polls `done` every 25 ms for at most `ms` (10 s unless told); true when it held. */
async function waitUntil(done: () => boolean | Promise<boolean>, ms = 10_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await done()) return true;
    await sleep(25);
  }
  return done();
}

/**
 * Runs a worker example as a reader would (`node --import tsx <script>`, env for the broker),
 * gives its output, and stops it (SIGTERM, by its own PID) within 10 s.
 */
async function runWorkerProcess(script: string, env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = once(child, 'exit');
  return {
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      return child.exitCode;
    },
  };
}

/** Ledger rows per message id: every id must appear exactly once. */
function rowsPerId(applied: readonly LedgerEntry[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const entry of applied) counts.set(entry.messageId, (counts.get(entry.messageId) ?? 0) + 1);
  return counts;
}

/** Signs like Stripe: `t=<seconds>,v1=<hex HMAC-SHA256 of "t.body">` with the endpoint secret. */
function stripeSignature(body: string, secret: string): string {
  const t = Math.floor(Date.now() / 1_000);
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
}

describe('examples/consumer', () => {
  it('fulfils a redelivered Stripe event once and refuses a forged one', async () => {
    const { url, child } = await startExample('examples/consumer/stripe-webhooks.ts');
    try {
      const event = JSON.stringify({
        id: 'evt_1QexampleA',
        type: 'checkout.session.completed',
        data: { object: { metadata: { order: 'order_42' } } },
      });
      const send = (body: string, secret = 'whsec_example_secret') =>
        fetch(`${url}/webhooks/stripe`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'stripe-signature': stripeSignature(body, secret) },
          body,
          signal: AbortSignal.timeout(5_000),
        });
      const forged = event.replace('order_42', 'order_666');
      assert.equal((await send(forged, 'whsec_guessed')).status, 401);
      const first = await send(event);
      assert.deepEqual(await first.json(), { status: 'processed', result: { fulfilled: 'order_42' } });
      const again = await send(event);
      assert.deepEqual(await again.json(), { status: 'duplicate', result: { fulfilled: 'order_42' } });
      const fulfilled = await fetch(`${url}/fulfilled`, { signal: AbortSignal.timeout(5_000) });
      assert.deepEqual(await fulfilled.json(), [{ event: 'evt_1QexampleA', order: 'order_42' }]);
    } finally {
      await stopExample(child);
    }
  });

  it('express-webhooks.ts: the Express glue fulfils a redelivered event once and refuses a forged one', async () => {
    const { url, child } = await startExample('examples/consumer/express-webhooks.ts');
    try {
      const event = JSON.stringify({
        id: 'evt_1QexampleB',
        type: 'checkout.session.completed',
        data: { object: { metadata: { order: 'order_43' } } },
      });
      const send = (body: string, secret = 'whsec_example_secret') =>
        fetch(`${url}/webhooks/stripe`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'stripe-signature': stripeSignature(body, secret) },
          body,
          signal: AbortSignal.timeout(5_000),
        });

      const forged = await send(event.replace('order_43', 'order_666'), 'whsec_guessed');
      const first = await send(event);
      const again = await send(event);
      const fulfilled = await fetch(`${url}/fulfilled`, { signal: AbortSignal.timeout(5_000) });

      assert.equal(forged.status, 401);
      assert.equal(
        ((await forged.json()) as { type: string }).type,
        'urn:idemkit:problem:webhook-bad-signature',
      );
      assert.deepEqual(await first.json(), { id: 'evt_1QexampleB', status: 'processed' });
      assert.equal(again.status, 200);
      assert.equal(again.headers.get('idempotent-replayed'), 'true');
      assert.deepEqual(await fulfilled.json(), [{ event: 'evt_1QexampleB', order: 'order_43' }]);
    } finally {
      await stopExample(child);
    }
  });
});

describe('examples/consumer broker workers', () => {
  it('rabbitmq-worker.ts: books every order once through duplicates, a failed handler and an in-flight redelivery', async () => {
    const run = randomUUID();
    const queue = `idemkit-example-${run}`;
    const dir = mkdtempSync(join(tmpdir(), 'idemkit-rabbit-worker-'));
    const publisher = await amqp.connect(AMQP_URL);
    let worker: Awaited<ReturnType<typeof startRabbitWorker>> | undefined;
    try {
      const channel = await publisher.createChannel();
      const N = 30;
      const id = (i: number) => `${run}-${i}`;
      // Every id divisible by 7 fails its first attempt (requeued, then booked); order 1's first
      // attempt is held until the worker has met its duplicate while it still runs (and requeued
      // it), bounded by 10 s: a fixed sleep let a slow broker deliver the duplicate after it.
      const attempts = new Map<string, number>();
      const stillRunningLines: string[] = [];
      let heldUntilDuplicateMet: boolean | undefined;
      worker = await startRabbitWorker({
        url: AMQP_URL,
        queue,
        store: sqliteStore({ path: join(dir, 'processed.db') }),
        log(line) {
          if (line.startsWith('still running elsewhere: ')) stillRunningLines.push(line);
        },
        async beforeApply(entry) {
          const attempt = (attempts.get(entry.messageId) ?? 0) + 1;
          attempts.set(entry.messageId, attempt);
          if (entry.messageId === id(1) && attempt === 1) {
            heldUntilDuplicateMet = await waitUntil(() =>
              stillRunningLines.includes(`still running elsewhere: ${id(1)}, requeued`),
            );
          }
          if (Number(entry.messageId.split('-').pop()) % 7 === 0 && attempt === 1) {
            throw new Error('stock service timed out');
          }
        },
      });
      const send = (i: number) =>
        channel.sendToQueue(
          queue,
          Buffer.from(JSON.stringify({ order: `order-${i}`, amountCents: 100 * i })),
          {
            messageId: id(i),
          },
        );
      send(1);
      send(1); // the publisher's retry: delivered while the first copy still runs
      for (let i = 0; i < N; i++) if (i !== 1) send(i);
      // Every third order published again after the first round (a publisher that retried).
      const again = [...Array(N).keys()].filter((i) => i % 3 === 0);
      for (const i of again) send(i);
      const duplicatesSent = again.length + 1;

      const w = worker;
      const settled = await waitUntil(
        () => w.stats.processed === N && w.stats.duplicates === duplicatesSent,
        20_000,
      );
      assert.ok(settled, `every copy was settled within 20 s: ${JSON.stringify(w.stats)}`);
      assert.equal(heldUntilDuplicateMet, true, 'the duplicate of order 1 met its first copy still running');
      await sleep(300); // nothing is booked late
      const counts = rowsPerId(w.applied);
      assert.equal(counts.size, N);
      assert.deepEqual(
        [...counts].filter(([, n]) => n !== 1),
        [],
      );
      assert.deepEqual(
        w.applied.find((e) => e.messageId === id(4)),
        { messageId: id(4), order: 'order-4', amountCents: 400 },
      );
      // The redeliveries really happened: failed handlers requeued, the in-flight copy requeued.
      assert.equal(w.stats.failed, [...Array(N).keys()].filter((i) => i % 7 === 0).length);
      assert.ok(w.stats.redeliverLater >= 1, 'the copy that met the running first one was requeued');
      assert.equal(w.stats.rejected, 0);
      const { messageCount } = await channel.checkQueue(queue);
      assert.equal(messageCount, 0);
    } finally {
      await worker?.stop();
      const cleanup = await publisher.createChannel().catch(() => undefined);
      await cleanup?.deleteQueue(queue).catch(() => {});
      await publisher.close().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('nats-worker.ts: books every order once through republished ids, a nak and an ack_wait redelivery', async () => {
    const { connect, jetstreamManager, jetstream, nanos } = await loadNats();
    const run = randomUUID();
    const stream = `IDEMKIT_EXAMPLE_${run.replaceAll('-', '_')}`;
    const subject = `idemkit.example.${run}`;
    const nc = await connect({ servers: NATS_URL, timeout: 3_000 });
    const jsm = await jetstreamManager(nc);
    let worker: Awaited<ReturnType<typeof startNatsWorker>> | undefined;
    try {
      // A short duplicate window, so a publisher's late retry gets past JetStream to the worker.
      const DUPLICATE_WINDOW_MS = 1_000;
      await jsm.streams.add({
        name: stream,
        subjects: [subject],
        duplicate_window: nanos(DUPLICATE_WINDOW_MS),
      });
      const N = 30;
      const id = (i: number) => `${run}-${i}`;
      // Every id divisible by 7 fails its first attempt (nak, then booked); order 1's first
      // attempt outlasts ack_wait (1 s), so JetStream redelivers it while it still runs.
      const attempts = new Map<string, number>();
      worker = await startNatsWorker({
        servers: NATS_URL,
        stream,
        subject,
        durable: 'ledger',
        ackWaitMs: 1_000,
        maxNakDelayMs: 300,
        log() {},
        async beforeApply(entry) {
          const attempt = (attempts.get(entry.messageId) ?? 0) + 1;
          attempts.set(entry.messageId, attempt);
          if (entry.messageId === id(1) && attempt === 1) await sleep(1_500);
          if (Number(entry.messageId.split('-').pop()) % 7 === 0 && attempt === 1) {
            throw new Error('stock service timed out');
          }
        },
      });
      const js = jetstream(nc);
      const publish = (i: number) =>
        js.publish(
          subject,
          new TextEncoder().encode(JSON.stringify({ order: `order-${i}`, amountCents: 100 * i })),
          {
            msgID: id(i),
          },
        );
      let retriedWithinMs = Number.POSITIVE_INFINITY;
      let retriedAsDuplicate: boolean | undefined;
      for (let i = 0; i < N; i++) {
        const sentAt = Date.now();
        assert.equal((await publish(i)).duplicate, false);
        if (i !== 2) continue;
        // A retry within the duplicate window is dropped by JetStream itself (retried at once:
        // after the other publishes, a loaded machine could be past the window already)...
        retriedAsDuplicate = (await publish(2)).duplicate;
        retriedWithinMs = Date.now() - sentAt;
      }
      assert.ok(retriedWithinMs < DUPLICATE_WINDOW_MS, `retried ${retriedWithinMs} ms after the first copy`);
      assert.equal(retriedAsDuplicate, true);
      // ...one after it is stored and delivered again: the deduplicator's case.
      await sleep(DUPLICATE_WINDOW_MS + 100);
      const again = [...Array(N).keys()].filter((i) => i % 3 === 0);
      for (const i of again) assert.equal((await publish(i)).duplicate, false);

      const w = worker;
      const settled = await waitUntil(async () => {
        if (w.stats.processed < N || w.stats.duplicates < again.length) return false;
        const info = await jsm.consumers.info(stream, 'ledger');
        return info.num_pending === 0 && info.num_ack_pending === 0;
      });
      assert.ok(settled, `every message was acked within 10 s: ${JSON.stringify(w.stats)}`);
      const counts = rowsPerId(w.applied);
      assert.equal(counts.size, N);
      assert.deepEqual(
        [...counts].filter(([, n]) => n !== 1),
        [],
      );
      assert.equal(w.stats.processed, N);
      // The redeliveries really happened: naks after failures, the ack_wait copy of order 1.
      assert.equal(w.stats.failed, [...Array(N).keys()].filter((i) => i % 7 === 0).length);
      assert.ok(w.stats.redeliverLater >= 1, 'the ack_wait redelivery met the running first attempt');
      assert.equal(w.stats.rejected, 0);
    } finally {
      await worker?.stop();
      await jsm.streams.delete(stream).catch(() => {});
      await nc.close();
    }
  });

  it('both workers run on their own: npx tsx examples/consumer/<broker>-worker.ts', async () => {
    const run = randomUUID();
    const queue = `idemkit-example-${run}`;
    const stream = `IDEMKIT_EXAMPLE_${run.replaceAll('-', '_')}`;
    const subject = `idemkit.example.${run}`;
    const order = (n: number) =>
      new TextEncoder().encode(JSON.stringify({ order: `order-${n}`, amountCents: n }));
    const rabbit = await runWorkerProcess('examples/consumer/rabbitmq-worker.ts', { AMQP_URL, QUEUE: queue });
    const nats = await runWorkerProcess('examples/consumer/nats-worker.ts', {
      NATS_URL,
      STREAM: stream,
      SUBJECT: subject,
    });
    const publisher = await amqp.connect(AMQP_URL);
    const { connect, jetstreamManager, jetstream, nanos } = await loadNats();
    const nc = await connect({ servers: NATS_URL, timeout: 3_000 });
    try {
      assert.ok(
        await waitUntil(
          () =>
            rabbit.output().includes(`consuming ${queue}`) && nats.output().includes(`consuming ${stream}`),
        ),
        `both workers started:\n${rabbit.output()}\n${nats.output()}`,
      );
      const channel = await publisher.createChannel();
      for (const n of [1, 1, 2])
        channel.sendToQueue(queue, Buffer.from(order(n)), { messageId: `${run}-${n}` });
      const jsm = await jetstreamManager(nc);
      await jsm.streams.update(stream, { duplicate_window: nanos(100) });
      const js = jetstream(nc);
      await js.publish(subject, order(1), { msgID: `${run}-1` });
      await sleep(200); // past the duplicate window: JetStream stores the retry
      for (const n of [1, 2]) await js.publish(subject, order(n), { msgID: `${run}-${n}` });
      const lines = (output: string) =>
        output
          .split('\n')
          .filter((l) => l.includes(`: ${run}-`))
          .sort();
      const expected = [
        `duplicate: ${run}-1 (order-1, 1 cents)`,
        `processed: ${run}-1 (order-1, 1 cents)`,
        `processed: ${run}-2 (order-2, 2 cents)`,
      ];
      assert.ok(
        await waitUntil(() => lines(rabbit.output()).length === 3 && lines(nats.output()).length === 3),
        `both workers handled three deliveries:\n${rabbit.output()}\n${nats.output()}`,
      );
      assert.deepEqual(lines(rabbit.output()), expected);
      assert.deepEqual(lines(nats.output()), expected);
    } finally {
      assert.equal(await rabbit.stop(), 0);
      assert.equal(await nats.stop(), 0);
      const cleanup = await publisher.createChannel().catch(() => undefined);
      await cleanup?.deleteQueue(queue).catch(() => {});
      await publisher.close().catch(() => {});
      const jsm = await jetstreamManager(nc);
      await jsm.streams.delete(stream).catch(() => {});
      await nc.close();
    }
    assert.match(rabbit.output(), /stopped: \{"processed":2,"duplicates":1,/);
    assert.match(nats.output(), /stopped: \{"processed":2,"duplicates":1,/);
  });
});
