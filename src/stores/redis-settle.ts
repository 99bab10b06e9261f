import { withTimeout } from '../core/store-call.js';
import type { RedisClientLike } from './redis-clients.js';
import { SettleChannelState } from './settle-listeners.js';

/*
 * Cross-process wake-ups for waiting duplicates on a standalone Redis. The settling scripts
 * PUBLISH the record key on one channel per prefix (redis-scripts.ts), in the same script as the
 * write, once a duplicate claim has found the record in progress (nobody can be waiting before). Each store instance SUBSCRIBEs on a dedicated connection (`client.duplicate()`, node-redis
 * or ioredis), made on the first wait; it serves every key. A lost connection is dropped, not
 * left to the client's own reconnect: waiters are woken to claim again and poll, and the next wait
 * (one second later at the earliest) subscribes on a fresh duplicate. close() disconnects it.
 */

/** The subset of a node-redis 5 client (and of an ioredis 5 Redis) a subscriber needs. */
interface Subscriber {
  on(event: string, listener: (...args: never[]) => void): unknown;
  connect(): Promise<unknown>;
  subscribe(channel: string, listener?: (message: string, channel: string) => void): Promise<unknown>;
  /** ioredis: 'wait' before a lazy connect. */
  status?: string;
  /** ioredis. */
  callBuffer?: unknown;
  disconnect(): unknown;
  /** node-redis 5: closes at once, without waiting for replies. */
  destroy?(): unknown;
  /** node-redis 5: the socket no longer keeps the process alive. */
  unref?(): unknown;
  /** ioredis: the connected socket. */
  stream?: { unref?(): unknown };
}

const RECONNECT_AFTER_MS = 1_000;

export interface RedisSettleChannel {
  onSettled(recordKey: string, listener: () => void): (() => void) | undefined;
  close(): void;
}

/** Undefined when the client cannot make a dedicated connection (no `duplicate()`). */
export function redisSettleChannel(
  client: RedisClientLike,
  channel: string,
  timeoutMs: number,
): RedisSettleChannel | undefined {
  const source = client as { duplicate?: () => Subscriber };
  if (typeof source.duplicate !== 'function') return undefined;
  const duplicate = source.duplicate.bind(source);
  const life = new SettleChannelState(open);
  let current: Subscriber | undefined;

  const onMessage = (message: unknown, from?: unknown) => {
    if (String(from) !== channel) return;
    life.listeners.notify(Buffer.isBuffer(message) ? message.toString('utf8') : String(message));
  };

  function end(subscriber: Subscriber): void {
    subscriber.on('error', () => {});
    try {
      if (typeof subscriber.destroy === 'function') subscriber.destroy();
      else subscriber.disconnect();
    } catch {
      // Already closed.
    }
  }

  /** Drops `subscriber` (if it is still the current one), wakes every waiter, polls until retry. */
  function drop(subscriber: Subscriber): void {
    if (current !== subscriber) return;
    current = undefined;
    end(subscriber);
    life.down(RECONNECT_AFTER_MS);
  }

  async function open(): Promise<void> {
    life.phase = 'connecting';
    let subscriber: Subscriber;
    try {
      subscriber = duplicate();
    } catch {
      life.down(Number.POSITIVE_INFINITY);
      return;
    }
    current = subscriber;
    const lost = () => drop(subscriber);
    subscriber.on('error', lost);
    subscriber.on('end', lost);
    const ioredis = subscriber.callBuffer !== undefined;
    try {
      await withTimeout(
        'redis subscribe',
        async () => {
          if (ioredis) {
            subscriber.on('close', lost);
            // ioredis emits (channel, message); node-redis calls its listener (message, channel).
            subscriber.on('message', ((from: unknown, message: unknown) => onMessage(message, from)) as (
              ...args: never[]
            ) => void);
            if (subscriber.status === 'wait') await subscriber.connect();
            await subscriber.subscribe(channel);
          } else {
            await subscriber.connect();
            await subscriber.subscribe(channel, (message, from) => onMessage(message, from));
          }
        },
        timeoutMs,
      );
    } catch {
      drop(subscriber);
      return;
    }
    if (current !== subscriber) return;
    // The subscription is a convenience for waiters, never a reason for the app to keep running:
    // an app that exits without closing the store must still exit.
    if (ioredis) subscriber.stream?.unref?.();
    else subscriber.unref?.();
    life.up();
  }

  return {
    onSettled: (recordKey, listener) => life.subscribe(recordKey, listener),
    close() {
      if (!life.close()) return;
      if (current) drop(current);
      life.listeners.notifyAll();
    },
  };
}
