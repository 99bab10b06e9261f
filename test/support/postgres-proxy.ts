import { createConnection, createServer, type Server, type Socket } from 'node:net';

/*
 * A small TCP proxy in front of PostgreSQL (or anything), which a test can cut: the fault proxy of
 * reliability.md §5.1, reduced to what the outage tests need.
 *   refuse    : existing connections are reset, new ones are accepted and reset at once
 *   blackhole : connections stay open but nothing passes either way (a partition)
 * heal() lets traffic through again; connections that lived through a black hole are reset then,
 * because bytes were dropped mid-stream and their protocol state is lost.
 */

export type ProxyMode = 'open' | 'refuse' | 'blackhole';

export interface TcpProxy {
  readonly port: number;
  cut(mode: Exclude<ProxyMode, 'open'>): void;
  heal(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let mode: ProxyMode = 'open';
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
    client.on('data', forward(upstream));
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
