import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import amqp from 'amqplib';
import type { Deduplicator } from '../../src/consumer/index.js';
import { brokerLedger, eventually, makeHandler } from '../support/broker-ledger.js';

/*
 * RabbitMQ (127.0.0.1:5672, guest/guest): messages are redelivered by the broker itself — a
 * handler's nack with requeue, a consumer whose connection drops before its acks, and a message
 * acked late so another consumer gets it first — to two competing consumers. The ledger must
 * hold every message's effect exactly once with the deduplicator, and more than once without.
 */

const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const MESSAGES = 120;
const ledger = brokerLedger('rabbit');

async function connect() {
  try {
    return await amqp.connect(AMQP_URL);
  } catch (error) {
    throw new Error(
      `RabbitMQ is not reachable at ${AMQP_URL} (${(error as Error).message}); start it with: rabbitmq-server -detached`,
    );
  }
}

interface Outcome {
  counts: Map<string, number>;
  redeliveries: number;
}

async function runScenario(dedup: Deduplicator | undefined): Promise<Outcome> {
  const run = `rabbit-${randomUUID()}`;
  const queue = `idemkit-test-${run}`;
  const handle = makeHandler(ledger, run, dedup);
  const admin = await connect();
  const adminChannel = await admin.createChannel();
  await adminChannel.assertQueue(queue, { durable: false });
  const connections = [admin];
  let redeliveries = 0;
  // Acked ids (an ack is final: never delivered again) and handlers running, for the end check.
  const acked = new Set<string>();
  let running = 0;
  try {
    for (let i = 0; i < MESSAGES; i++) {
      adminChannel.sendToQueue(queue, Buffer.from(JSON.stringify({ n: i })), { messageId: `${run}-${i}` });
    }

    // Consumer A: handles messages but never acks the ones whose number ends in 3; after 20
    // deliveries its connection drops (a killed process): everything it left unacked is requeued.
    const doomed = await connect();
    connections.push(doomed);
    const doomedChannel = await doomed.createChannel();
    await doomedChannel.prefetch(10);
    let seenByDoomed = 0;
    await doomedChannel.consume(queue, async (msg) => {
      if (!msg) return;
      seenByDoomed++;
      running++;
      try {
        const id = msg.properties.messageId as string;
        const verdict = await handle(id);
        if (seenByDoomed >= 20) {
          await doomed.close().catch(() => {});
          return;
        }
        if (verdict === 'ack' && !id.endsWith('3')) {
          doomedChannel.ack(msg);
          acked.add(id);
        }
      } catch {
        // The channel closed under a handler that was still running: it is requeued.
      } finally {
        running--;
      }
    });

    // Consumers B and C compete for the rest. B sends every fifth message back after handling
    // it (a nack with requeue: the handler's result was lost), so someone handles it again.
    const workers = await Promise.all([connect(), connect()]);
    connections.push(...workers);
    for (const [index, connection] of workers.entries()) {
      const channel = await connection.createChannel();
      await channel.prefetch(5);
      let count = 0;
      await channel.consume(queue, async (msg) => {
        if (!msg) return;
        if (msg.fields.redelivered) redeliveries++;
        running++;
        try {
          const id = msg.properties.messageId as string;
          const verdict = await handle(id);
          count++;
          if (verdict === 'requeue') {
            await new Promise((resolve) => setTimeout(resolve, 20));
            channel.nack(msg, false, true);
          } else if (index === 0 && count % 5 === 0 && !msg.fields.redelivered) {
            channel.nack(msg, false, true);
          } else {
            channel.ack(msg);
            acked.add(id);
          }
        } finally {
          running--;
        }
      });
    }

    // Done when every message is acked (so never delivered again) and no handler still runs.
    const drained = await eventually(() => acked.size === MESSAGES && running === 0, 30_000);
    assert.ok(drained, 'every message was handled and acked within 30 s');
    return { counts: await ledger.counts(run), redeliveries };
  } finally {
    await adminChannel.deleteQueue(queue).catch(() => {});
    for (const c of connections.reverse()) await c.close().catch(() => {});
  }
}

describe('RabbitMQ: redeliveries to competing consumers', () => {
  it('negative control: without the deduplicator, effects are applied more than once', async () => {
    const { counts } = await runScenario(undefined);
    const duplicated = [...counts.values()].filter((n) => n > 1).length;
    assert.ok(duplicated > 0, `expected duplicated effects, got ${duplicated}`);
  });

  it('with the deduplicator, every message is applied exactly once', async () => {
    const { counts, redeliveries } = await runScenario(await ledger.dedup());
    assert.ok(redeliveries > 0, 'the broker redelivered');
    assert.equal(counts.size, MESSAGES);
    assert.deepEqual(
      [...counts.entries()].filter(([, n]) => n !== 1),
      [],
    );
  });
});
