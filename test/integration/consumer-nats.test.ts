import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import type { Deduplicator } from '../../src/consumer/index.js';
import { brokerLedger, eventually, makeHandler } from '../support/broker-ledger.js';
import { type JsMsg, loadNats, type NatsConnection } from '../support/nats-client.js';

const { AckPolicy, connect, headers: natsHeaders, jetstream, jetstreamManager, nanos } = await loadNats();

/*
 * NATS JetStream (127.0.0.1:4222): a stream and one durable pull consumer shared by two
 * competing workers. Redeliveries come from JetStream itself: a message left unacked is
 * redelivered after ack_wait (1 s), a nak redelivers at once, a worker that stops mid-batch
 * leaves its messages to ack_wait. The ledger must hold every effect exactly once with the
 * deduplicator, and more than once without.
 */

const NATS_URL = process.env.NATS_URL ?? '127.0.0.1:4222';
const MESSAGES = 100;
const ledger = brokerLedger('nats');

async function connectNats(): Promise<NatsConnection> {
  try {
    return await connect({ servers: NATS_URL, timeout: 3_000 });
  } catch (error) {
    throw new Error(
      `NATS is not reachable at ${NATS_URL} (${(error as Error).message}); start it with: nats-server -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server`,
    );
  }
}

async function runScenario(dedup: Deduplicator | undefined) {
  const run = `nats-${randomUUID()}`;
  const stream = `IDEMKIT_${run.replaceAll('-', '_')}`;
  const subject = `idemkit.test.${run}`;
  const handle = makeHandler(ledger, run, dedup);
  const nc = await connectNats();
  const jsm = await jetstreamManager(nc);
  const acked = new Set<string>();
  let running = 0;
  let redeliveries = 0;
  const stops: (() => void)[] = [];
  try {
    await jsm.streams.add({ name: stream, subjects: [subject] });
    await jsm.consumers.add(stream, {
      durable_name: 'workers',
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(1_000),
    });
    const js = jetstream(nc);
    for (let i = 0; i < MESSAGES; i++) {
      const h = natsHeaders();
      h.set('message-id', `${run}-${i}`);
      await js.publish(subject, new TextEncoder().encode(JSON.stringify({ n: i })), { headers: h });
    }

    const work = async (worker: number, connection: NatsConnection) => {
      const consumer = await jetstream(connection).consumers.get(stream, 'workers');
      const messages = await consumer.consume({ max_messages: 10 });
      stops.push(() => messages.stop());
      let seen = 0;
      const onMessage = async (m: JsMsg) => {
        const id = m.headers?.get('message-id') ?? '';
        if (m.redelivered) redeliveries++;
        seen++;
        running++;
        try {
          const verdict = await handle(id);
          if (verdict === 'requeue') m.nak(50);
          // Worker 0 "loses" its ack for every fourth first delivery: ack_wait redelivers it.
          else if (worker === 0 && seen % 4 === 0 && !m.redelivered) return;
          // Worker 1 stops after 15 messages, leaving what it pulled to ack_wait.
          else if (worker === 1 && seen > 15) {
            messages.stop();
            return;
          } else {
            m.ack();
            acked.add(id);
          }
        } finally {
          running--;
        }
      };
      for await (const m of messages) void onMessage(m);
    };
    const second = await connectNats();
    stops.push(() => void second.close());
    void work(0, nc);
    void work(1, second);
    // A third worker joins so the stopped one's messages still find a consumer.
    const third = await connectNats();
    stops.push(() => void third.close());
    setTimeout(() => void work(2, third), 500);

    const drained = await eventually(() => acked.size === MESSAGES && running === 0, 40_000);
    assert.ok(drained, `every message was acked within 40 s (acked ${acked.size})`);
    return { counts: await ledger.counts(run), redeliveries };
  } finally {
    for (const stop of stops) stop();
    await jsm.streams.delete(stream).catch(() => {});
    await nc.close();
  }
}

describe('NATS JetStream: redeliveries to competing workers', () => {
  it('negative control: without the deduplicator, effects are applied more than once', async () => {
    const { counts } = await runScenario(undefined);
    const duplicated = [...counts.values()].filter((n) => n > 1).length;
    assert.ok(duplicated > 0, `expected duplicated effects, got ${duplicated}`);
  });

  it('with the deduplicator, every message is applied exactly once', async () => {
    const { counts, redeliveries } = await runScenario(await ledger.dedup());
    assert.ok(redeliveries > 0, 'JetStream redelivered');
    assert.equal(counts.size, MESSAGES);
    assert.deepEqual(
      [...counts.entries()].filter(([, n]) => n !== 1),
      [],
    );
  });
});
