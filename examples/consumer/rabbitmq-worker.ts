import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import amqp, { type ConsumeMessage } from 'amqplib';
// In your app: import { createDeduplicator, RedeliverLaterError } from 'idemkit/consumer'
//              import { sqliteStore } from 'idemkit/sqlite'
import { createDeduplicator, RedeliverLaterError } from '../../src/consumer/index.js';
import { type IdempotencyStore, memoryStore } from '../../src/index.js';
import { sqliteStore } from '../../src/stores/sqlite.js';

/**
 * A RabbitMQ worker that books each order message into a ledger once, however often the broker
 * delivers it: a requeued message, a consumer that died before its ack, a publisher that sent the
 * same message twice. The message's own id (`properties.messageId`, set by the publisher) is the
 * key; a delivery tag changes on every redelivery and is useless for this.
 *
 * - processed now, or a duplicate of a processed message: ack
 * - the handler failed, or the first delivery of this id still runs elsewhere: nack + requeue
 * - no message id, a body that is not an order, an id held uncertain: nack without requeue (to
 *   the dead-letter exchange, if the queue has one)
 *
 * The ledger lives in memory here; in your app it is your database. Processed ids are kept in
 * SQLite (or memory): with both in one PostgreSQL database, `createPostgresInbox()` commits the
 * ledger row with the processed record.
 */

export interface Order {
  order: string;
  amountCents: number;
}

export interface LedgerEntry extends Order {
  messageId: string;
}

export interface RabbitWorkerOptions {
  /** e.g. amqp://guest:guest@127.0.0.1:5672 */
  url: string;
  queue: string;
  /** Where processed ids are kept; `stop()` closes it. @default a memory store (gone on restart) */
  store?: IdempotencyStore;
  /** Messages handled at once. @default 10 */
  prefetch?: number;
  /**
   * What the effect needs from elsewhere before the ledger row is written (a stock check, a
   * payment). If it throws, nothing is booked and the message is requeued.
   */
  beforeApply?: (entry: LedgerEntry) => void | Promise<void>;
  /** The longest wait before a message is requeued (RabbitMQ redelivers at once). @default 200 */
  requeueDelayMs?: number;
  log?: (line: string) => void;
}

export interface WorkerStats {
  /** Handled now: the ledger row was written. */
  processed: number;
  /** Acked without running: an earlier delivery of the id was processed. */
  duplicates: number;
  /** Requeued because the handler threw. */
  failed: number;
  /** Requeued because the first delivery of the id was still running (`RedeliverLaterError`). */
  redeliverLater: number;
  /** Dropped (nack without requeue): no id, not an order, or an id held uncertain. */
  rejected: number;
}

export interface RabbitWorker {
  /** The ledger: one row per order message. */
  readonly applied: readonly LedgerEntry[];
  readonly stats: Readonly<WorkerStats>;
  /** Stops consuming, lets running handlers finish (up to 5 s), and closes the connection. */
  stop(): Promise<void>;
}

export async function startWorker(options: RabbitWorkerOptions): Promise<RabbitWorker> {
  const log = options.log ?? ((line: string) => console.log(line));
  const store = options.store ?? memoryStore({ onWarning() {} });
  const dedup = createDeduplicator({ store, retentionMs: 3 * 24 * 3_600_000 });
  const requeueDelayMs = options.requeueDelayMs ?? 200;
  const applied: LedgerEntry[] = [];
  const stats: WorkerStats = { processed: 0, duplicates: 0, failed: 0, redeliverLater: 0, rejected: 0 };
  const running = new Set<Promise<void>>();

  const connection = await amqp.connect(options.url);
  const channel = await connection.createChannel();
  await channel.assertQueue(options.queue, { durable: true });
  await channel.prefetch(options.prefetch ?? 10);

  async function handle(msg: ConsumeMessage): Promise<void> {
    const messageId: unknown = msg.properties.messageId;
    const order = parseOrder(msg.content);
    if (typeof messageId !== 'string' || messageId === '' || !order) {
      stats.rejected++;
      log(
        `rejected: ${typeof messageId === 'string' ? messageId : 'a message without an id'} is not an order`,
      );
      channel.nack(msg, false, false);
      return;
    }
    try {
      const { status } = await dedup.once({ source: options.queue, id: messageId }, async () => {
        const entry = { messageId, ...order };
        await options.beforeApply?.(entry);
        applied.push(entry);
        return { booked: applied.length };
      });
      if (status === 'processed') stats.processed++;
      else stats.duplicates++;
      log(`${status}: ${messageId} (${order.order}, ${order.amountCents} cents)`);
      channel.ack(msg);
    } catch (error) {
      if (error instanceof RedeliverLaterError) {
        stats.redeliverLater++;
        log(`still running elsewhere: ${messageId}, requeued`);
        await sleep(Math.min(error.retryAfterMs, requeueDelayMs));
        channel.nack(msg, false, true);
      } else if (isPermanent(error)) {
        stats.rejected++;
        log(`rejected: ${messageId}: ${(error as Error).message}`);
        channel.nack(msg, false, false);
      } else {
        stats.failed++;
        log(`failed: ${messageId}: ${(error as Error).message}; requeued`);
        await sleep(requeueDelayMs);
        channel.nack(msg, false, true);
      }
    }
  }

  const { consumerTag } = await channel.consume(options.queue, (msg) => {
    if (!msg) {
      log(`RabbitMQ cancelled the consumer (was ${options.queue} deleted?)`);
      return;
    }
    const task = handle(msg)
      .catch((error: unknown) => log(`could not settle a message: ${(error as Error).message}`))
      .finally(() => running.delete(task));
    running.add(task);
  });
  log(`consuming ${options.queue} on ${options.url.replace(/\/\/[^@]*@/, '//')}`);

  let stopped: Promise<void> | undefined;
  return {
    applied,
    stats,
    stop() {
      stopped ??= (async () => {
        await channel.cancel(consumerTag).catch(() => {});
        await Promise.race([Promise.allSettled([...running]), sleep(5_000)]);
        await connection.close().catch(() => {}); // unacked messages go back to the queue
        await dedup.close();
        await store.close();
      })();
      return stopped;
    },
  };
}

function parseOrder(content: Buffer): Order | undefined {
  try {
    const value = JSON.parse(content.toString('utf8')) as Partial<Order>;
    if (typeof value.order === 'string' && Number.isInteger(value.amountCents)) {
      return { order: value.order, amountCents: value.amountCents as number };
    }
  } catch {}
  return undefined;
}

/** Redelivering these cannot help: an id held uncertain, or an id reused for another payload. */
function isPermanent(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'outcome-uncertain' || code === 'key-reused';
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const url = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
  const queue = process.env.QUEUE ?? 'orders';
  const path = process.env.SQLITE_PATH;
  console.log(`processed ids in ${path ? `SQLite (${path})` : 'memory (set SQLITE_PATH to keep them)'}`);
  const worker = await startWorker({ url, queue, ...(path ? { store: sqliteStore({ path }) } : {}) });
  const shutdown = async () => {
    await worker.stop();
    console.log(`stopped: ${JSON.stringify(worker.stats)}`);
    process.exit(0);
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}
