import { createConnection, createServer, type Socket } from 'node:net';

/*
 * The chaos run's TCP fault proxy between one SUT and its store (no tc netem or iptables on the
 * CI machines). Faults, each until heal():
 *   latency(ms) : every chunk, both ways, is delayed (order kept)
 *   blackhole   : connections stay open, nothing passes (a partition); new ones hang too
 *   reset       : every connection is reset, new ones are reset at once (a store that is gone)
 * heal() resets the connections that lived through a black hole: bytes were dropped mid-stream,
 * so their protocol state is lost (the clients reconnect).
 */

export type TcpFault = { kind: 'latency'; ms: number } | { kind: 'blackhole' } | { kind: 'reset' };

export interface ChaosTcpProxy {
  readonly port: number;
  fault(fault: TcpFault): void;
  heal(): void;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket;
  tainted: boolean;
}

export async function startChaosTcpProxy(target: { host: string; port: number }): Promise<ChaosTcpProxy> {
  let fault: TcpFault | undefined;
  const pairs = new Set<Pair>();

  const server = createServer((client) => {
    if (fault?.kind === 'reset') {
      client.resetAndDestroy();
      return;
    }
    const upstream = createConnection(target);
    const pair: Pair = { client, upstream, tainted: fault?.kind === 'blackhole' };
    pairs.add(pair);
    const pipe = (from: Socket, to: Socket) => {
      // One FIFO per direction, drained by one timer: a chunk never overtakes the one before it,
      // during latency or after heal(). (A timer per chunk does not keep that promise: timers of
      // different durations due in the same millisecond may fire in either order, and a reordered
      // byte stream is a fault no real network injects.)
      const queue: { chunk: Buffer; at: number }[] = [];
      let timer: NodeJS.Timeout | undefined;
      const drain = () => {
        timer = undefined;
        const now = Date.now();
        while (queue.length > 0 && (queue[0] as { at: number }).at <= now) {
          const { chunk } = queue.shift() as { chunk: Buffer };
          if (!pair.tainted && !to.destroyed) to.write(chunk);
        }
        if (queue.length > 0) timer = setTimeout(drain, (queue[0] as { at: number }).at - now);
      };
      from.on('data', (chunk: Buffer) => {
        if (pair.tainted || fault?.kind === 'blackhole') {
          pair.tainted = true;
          return;
        }
        const delay = fault?.kind === 'latency' ? fault.ms : 0;
        if (delay === 0 && queue.length === 0) {
          to.write(chunk);
          return;
        }
        queue.push({ chunk, at: Date.now() + delay });
        timer ??= setTimeout(drain, (queue[0] as { at: number }).at - Date.now());
      });
      from.once('close', () => clearTimeout(timer));
    };
    pipe(client, upstream);
    pipe(upstream, client);
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

  const resetAll = (only: (pair: Pair) => boolean) => {
    for (const pair of [...pairs]) {
      if (!only(pair)) continue;
      pairs.delete(pair);
      pair.client.resetAndDestroy();
      pair.upstream.destroy();
    }
  };

  return {
    port,
    fault(next) {
      fault = next;
      if (next.kind === 'reset') resetAll(() => true);
      if (next.kind === 'blackhole') for (const pair of pairs) pair.tainted = true;
    },
    heal() {
      fault = undefined;
      resetAll((pair) => pair.tainted);
    },
    close() {
      resetAll(() => true);
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
