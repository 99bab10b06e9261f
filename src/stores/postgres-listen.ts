import { createHash } from 'node:crypto';
import { withTimeout } from '../core/store-call.js';
import type { TableName } from './postgres-schema.js';
import type { PostgresPoolClient } from './postgres-transaction.js';
import { SettleChannelState } from './settle-listeners.js';

/*
 * Cross-process wake-ups for waiting duplicates (`postgresStore({ notify: true })`). The settling
 * statements (complete, release, markUncertain; and the completion inside a transactional
 * COMMIT) send `pg_notify(channel, key)` themselves, so a notification costs no round trip and
 * is delivered only if the write commits. Each store instance LISTENs on one connection checked
 * out of the app's pool on the first wait; it serves every key, is opened again after a loss
 * (once a second at most, on the next wait) and is destroyed by close().
 */

/** A pooled `pg` client that can LISTEN: it emits `notification`, `error` and `end`. */
interface ListeningClient extends PostgresPoolClient {
  on(event: string, listener: (...args: never[]) => void): unknown;
  removeListener(event: string, listener: (...args: never[]) => void): unknown;
}

/** After a lost or failed LISTEN connection, waiters poll for this long before the next try. */
const RECONNECT_AFTER_MS = 1_000;

/**
 * The channel of a table: readable, lower case (LISTEN folds identifiers), and within
 * PostgreSQL's 63-byte identifier limit whatever the schema and table are called.
 */
export function settleChannel(name: TableName): string {
  const hash = createHash('sha256').update(name.id).digest('hex').slice(0, 8);
  return `idemkit_settled_${name.table.toLowerCase().slice(0, 30)}_${hash}`;
}

export interface SettleChannel {
  onSettled(key: string, listener: () => void): (() => void) | undefined;
  close(): void;
}

export function postgresSettleChannel(
  connect: () => Promise<PostgresPoolClient>,
  channel: string,
  timeoutMs: number,
): SettleChannel {
  const life = new SettleChannelState(open);
  let client: ListeningClient | undefined;

  const onNotification = (message: { channel?: string; payload?: string }) => {
    if (message.channel === channel && message.payload) life.listeners.notify(message.payload);
  };
  const onLost = () => drop();

  /** Forgets the connection (destroying it), wakes every waiter, and polls until the retry. */
  function drop(): void {
    const lost = client;
    client = undefined;
    if (lost) {
      lost.removeListener('notification', onNotification);
      lost.removeListener('end', onLost);
      // Kept: pg may still emit 'error' on a client while the pool destroys it.
      lost.removeListener('error', onLost);
      lost.on('error', () => {});
      lost.release(true);
    }
    life.down(RECONNECT_AFTER_MS);
  }

  async function open(): Promise<void> {
    life.phase = 'connecting';
    let opened: ListeningClient;
    try {
      opened = (await withTimeout('postgres listen connect', connect, timeoutMs, (late) =>
        late.release(true),
      )) as ListeningClient;
    } catch {
      if (life.phase === 'connecting') drop();
      return;
    }
    // close() may have run while we connected.
    if (life.closed) {
      opened.release(true);
      return;
    }
    if (typeof opened.on !== 'function' || typeof opened.removeListener !== 'function') {
      // Not a pg client (a pool wrapper without events): it cannot LISTEN; waiters poll.
      opened.release();
      life.down(Number.POSITIVE_INFINITY);
      return;
    }
    client = opened;
    opened.on('notification', onNotification);
    opened.on('error', onLost);
    opened.on('end', onLost);
    try {
      await opened.query({ text: `LISTEN "${channel}"`, query_timeout: timeoutMs });
    } catch {
      if (client === opened) drop();
      return;
    }
    if (client === opened) life.up();
  }

  return {
    onSettled: (key, listener) => life.subscribe(key, listener),
    close() {
      if (life.close()) drop();
    },
  };
}
