import { createConnection, createServer, type Server, type Socket } from 'node:net';

/*
 * A small TCP proxy in front of PostgreSQL (or anything), which a test can cut: the network faults
 * of docs/guarantees.md, reduced to what the outage tests need.
 *   refuse    : existing connections are reset, new ones are accepted and reset at once
 *   blackhole : connections stay open but nothing passes either way (a partition)
 * heal() lets traffic through again; connections that lived through a black hole are reset then,
 * because bytes were dropped mid-stream and their protocol state is lost.
 * loseReply(pattern, every) is "drop the reply to the next client message
 * matching a pattern" (COMMIT, for T37): every `every`-th matching client message is delivered
 * ('delivered': the upstream socket is ended after it, so the server still runs it) or not
 * ('never-sent'), and the client's socket is reset: the client cannot know which.
 */

export type ProxyMode = 'open' | 'refuse' | 'blackhole';

export interface TcpProxy {
  readonly port: number;
  cut(mode: Exclude<ProxyMode, 'open'>): void;
  loseReply(pattern: string, every: number, fate: 'delivered' | 'never-sent'): void;
  /** How many messages `loseReply` has cut off so far. */
  readonly repliesLost: number;
  heal(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let mode: ProxyMode = 'open';
  let lose: { pattern: Buffer; every: number; fate: 'delivered' | 'never-sent'; seen: number } | undefined;
  let repliesLost = 0;
  const pairs = new Set<{ client: Socket; upstream: Socket; tainted: boolean }>();

  const server: Server = createServer((client) => {
    if (mode === 'refuse') {
      client.resetAndDestroy();
      return;
    }
    const upstream: Socket = createConnection(target);
    const pair = { client, upstream, tainted: mode === 'blackhole' };
    pairs.add(pair);
    const forward = (to: Socket) => (chunk: Buffer) => {
      if (mode === 'open' && !pair.tainted) to.write(chunk);
      else pair.tainted = true;
    };
    const toUpstream = forward(upstream);
    client.on('data', (chunk: Buffer) => {
      if (lose && mode === 'open' && chunk.includes(lose.pattern) && ++lose.seen % lose.every === 0) {
        repliesLost++;
        pairs.delete(pair);
        // Detach first: the client's close handler would destroy the upstream socket, discarding
        // the message before it is flushed.
        client
          .removeAllListeners('close')
          .removeAllListeners('error')
          .on('error', () => {});
        if (lose.fate === 'delivered') upstream.end(chunk);
        else upstream.destroy();
        client.resetAndDestroy();
        return;
      }
      toUpstream(chunk);
    });
    upstream.on('data', forward(client));
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;

  function resetAll(filter: (pair: { tainted: boolean }) => boolean): void {
    for (const pair of [...pairs]) {
      if (!filter(pair)) continue;
      pairs.delete(pair);
      pair.client.resetAndDestroy();
      pair.upstream.destroy();
    }
  }

  return {
    port,
    cut(next) {
      mode = next;
      if (next === 'refuse') resetAll(() => true);
      else for (const pair of pairs) pair.tainted = true;
    },
    loseReply(pattern, every, fate) {
      lose = { pattern: Buffer.from(pattern), every, fate, seen: 0 };
    },
    get repliesLost() {
      return repliesLost;
    },
    heal() {
      mode = 'open';
      resetAll((pair) => pair.tainted);
    },
    close() {
      resetAll(() => true);
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
