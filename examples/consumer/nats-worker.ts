import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
// In your app: import { createDeduplicator, RedeliverLaterError } from 'idemkit/consumer'
//              import { sqliteStore } from 'idemkit/sqlite'
import { createDeduplicator, RedeliverLaterError } from '../../src/consumer/index.js';
import { type IdempotencyStore, memoryStore } from '../../src/index.js';
import { sqliteStore } from '../../src/stores/sqlite.js';

/**
 * A NATS JetStream worker that books each order message into a ledger once, however often
 * JetStream delivers it: after `ack_wait` when an ack was lost or a handler ran long, after a
 * nak, or because a publisher sent it again after the stream's duplicate window. The message's
 * own id is the key: the `Nats-Msg-Id` header (`js.publish(subject, data, { msgID })`), which
 * JetStream also uses to drop repeated publishes within its duplicate window.
 *
 * - processed now, or a duplicate of a processed message: `m.ack()`
 * - the first delivery of this id still runs: `m.nak(retryAfterMs)` (capped)
 * - the handler failed: `m.nak(delay)`, growing with the delivery count
 * - no id, a body that is not an order, an id held uncertain: `m.term()` (never redelivered)
 *
 * The ledger lives in memory here; in your app it is your database (see rabbitmq-worker.ts).
 */

// In your app: import { connect } from '@nats-io/transport-node'
//              import { AckPolicy, jetstream, jetstreamManager, nanos } from '@nats-io/jetstream'
// Here they are loaded through specifiers the type checker does not follow and typed below:
// their declaration files do not compile under this repository's exactOptionalPropertyTypes
// without skipLibCheck.
interface JsMsg {
  readonly data: Uint8Array;
  readonly headers?: { get(name: string): string };
  readonly info: { readonly deliveryCount: number };
  ack(): void;
  nak(millis?: number): void;
  term(reason?: string): void;
}
interface ConsumerMessages extends AsyncIterable<JsMsg> {
  stop(): void;
}
interface NatsConnection {
  close(): Promise<void>;
}
interface JetStreamManager {
  streams: {
    info(name: string): Promise<unknown>;
    add(config: { name: string; subjects: string[] }): Promise<unknown>;
  };
  consumers: {
    info(stream: string, durable: string): Promise<unknown>;
    add(
      stream: string,
      config: { durable_name: string; ack_policy: string; ack_wait: number },
    ): Promise<unknown>;
  };
}
interface JetStreamClient {
  consumers: {
    get(
      stream: string,
      durable: string,
    ): Promise<{ consume(options: { max_messages: number }): Promise<ConsumerMessages> }>;
  };
}
const TRANSPORT: string = '@nats-io/transport-node';
const JETSTREAM: string = '@nats-io/jetstream';
const { connect, nanos } = (await import(TRANSPORT)) as {
  connect(options: { servers: string; timeout?: number }): Promise<NatsConnection>;
  nanos(millis: number): number;
};
const { AckPolicy, jetstream, jetstreamManager } = (await import(JETSTREAM)) as {
  AckPolicy: { Explicit: string };
  jetstream(nc: NatsConnection): JetStreamClient;
  jetstreamManager(nc: NatsConnection): Promise<JetStreamManager>;
};

export interface Order {
  order: string;
  amountCents: number;
}

export interface LedgerEntry extends Order {
  messageId: string;
}

export interface NatsWorkerOptions {
  /** e.g. 127.0.0.1:4222 */
  servers: string;
  /** The stream, made with `subject` if it does not exist. */
  stream: string;
  subject: string;
  /** The durable consumer, made (explicit acks, `ackWaitMs`) if it does not exist. @default 'ledger' */
  durable?: string;
  /** `ack_wait` of a consumer this worker makes. @default 30_000 */
  ackWaitMs?: number;
  /** Where processed ids are kept; `stop()` closes it. @default a memory store (gone on restart) */
  store?: IdempotencyStore;
  /** Messages handled at once. @default 10 */
  maxMessages?: number;
  /**
   * What the effect needs from elsewhere before the ledger row is written (a stock check, a
   * payment). If it throws, nothing is booked and the message is nak'd.
   */
  beforeApply?: (entry: LedgerEntry) => void | Promise<void>;
  /** The longest nak delay, for an id still running elsewhere and for a failed handler. @default 5_000 */
  maxNakDelayMs?: number;
  log?: (line: string) => void;
}

export interface WorkerStats {
  /** Handled now: the ledger row was written. */
  processed: number;
  /** Acked without running: an earlier delivery of the id was processed. */
  duplicates: number;
  /** Nak'd because the handler threw. */
  failed: number;
  /** Nak'd because the first delivery of the id was still running (`RedeliverLaterError`). */
  redeliverLater: number;
  /** Terminated: no id, not an order, or an id held uncertain. */
  rejected: number;
}

export interface NatsWorker {
  /** The ledger: one row per order message. */
  readonly applied: readonly LedgerEntry[];
  readonly stats: Readonly<WorkerStats>;
  /** Stops pulling, lets running handlers finish (up to 5 s), and closes the connection. */
  stop(): Promise<void>;
}

export async function startWorker(options: NatsWorkerOptions): Promise<NatsWorker> {
  const log = options.log ?? ((line: string) => console.log(line));
  const durable = options.durable ?? 'ledger';
  const maxMessages = options.maxMessages ?? 10;
  const maxNakDelayMs = options.maxNakDelayMs ?? 5_000;
  const store = options.store ?? memoryStore({ onWarning() {} });
  const dedup = createDeduplicator({ store, retentionMs: 3 * 24 * 3_600_000 });
  const applied: LedgerEntry[] = [];
  const stats: WorkerStats = { processed: 0, duplicates: 0, failed: 0, redeliverLater: 0, rejected: 0 };
  const running = new Set<Promise<void>>();

  const nc = await connect({ servers: options.servers, timeout: 3_000 });
  const jsm = await jetstreamManager(nc);
  await jsm.streams
    .info(options.stream)
    .catch(() => jsm.streams.add({ name: options.stream, subjects: [options.subject] }));
  await jsm.consumers.info(options.stream, durable).catch(() =>
    jsm.consumers.add(options.stream, {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(options.ackWaitMs ?? 30_000),
    }),
  );
  const consumer = await jetstream(nc).consumers.get(options.stream, durable);
  const messages = await consumer.consume({ max_messages: maxMessages });

  async function handle(m: JsMsg): Promise<void> {
    const messageId = m.headers?.get('Nats-Msg-Id') ?? '';
    const order = parseOrder(m.data);
    if (messageId === '' || !order) {
      stats.rejected++;
      log(`rejected: ${messageId || 'a message without Nats-Msg-Id'} is not an order`);
      m.term('not an order');
      return;
    }
    try {
      const { status } = await dedup.once({ source: options.stream, id: messageId }, async () => {
        const entry = { messageId, ...order };
        await options.beforeApply?.(entry);
        applied.push(entry);
        return { booked: applied.length };
      });
      if (status === 'processed') stats.processed++;
      else stats.duplicates++;
      log(`${status}: ${messageId} (${order.order}, ${order.amountCents} cents)`);
      m.ack();
    } catch (error) {
      if (error instanceof RedeliverLaterError) {
        stats.redeliverLater++;
        const delay = Math.min(error.retryAfterMs, maxNakDelayMs);
        log(`still running elsewhere: ${messageId}, nak ${delay} ms`);
        m.nak(delay);
      } else if (isPermanent(error)) {
        stats.rejected++;
        log(`rejected: ${messageId}: ${(error as Error).message}`);
        m.term((error as Error).message);
      } else {
        stats.failed++;
        const delay = Math.min(250 * 2 ** (m.info.deliveryCount - 1), maxNakDelayMs);
        log(`failed: ${messageId}: ${(error as Error).message}; nak ${delay} ms`);
        m.nak(delay);
      }
    }
  }

  const loop = (async () => {
    for await (const m of messages) {
      // At most maxMessages handlers at once; the rest wait in JetStream.
      while (running.size >= maxMessages) await Promise.race(running);
      const task = handle(m)
        .catch((error: unknown) => log(`could not settle a message: ${(error as Error).message}`))
        .finally(() => running.delete(task));
      running.add(task);
    }
  })();
  log(`consuming ${options.stream} (${options.subject}) as ${durable} on ${options.servers}`);

  let stopped: Promise<void> | undefined;
  return {
    applied,
    stats,
    stop() {
      stopped ??= (async () => {
        messages.stop();
        await Promise.race([loop.then(() => Promise.allSettled([...running])), sleep(5_000)]);
        await nc.close(); // unacked messages are redelivered after ack_wait
        await dedup.close();
        await store.close();
      })();
      return stopped;
    },
  };
}

function parseOrder(data: Uint8Array): Order | undefined {
  try {
    const value = JSON.parse(new TextDecoder().decode(data)) as Partial<Order>;
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
  const servers = process.env.NATS_URL ?? '127.0.0.1:4222';
  const stream = process.env.STREAM ?? 'ORDERS';
  const subject = process.env.SUBJECT ?? 'orders.created';
  const path = process.env.SQLITE_PATH;
  console.log(`processed ids in ${path ? `SQLite (${path})` : 'memory (set SQLITE_PATH to keep them)'}`);
  const worker = await startWorker({
    servers,
    stream,
    subject,
    ...(path ? { store: sqliteStore({ path }) } : {}),
  });
  const shutdown = async () => {
    await worker.stop();
    console.log(`stopped: ${JSON.stringify(worker.stats)}`);
    process.exit(0);
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}
