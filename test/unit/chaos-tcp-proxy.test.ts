import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createConnection, createServer, type Socket } from 'node:net';
import { after, test } from 'node:test';
import { setTimeout as sleep, setImmediate as tick } from 'node:timers/promises';
import { startChaosTcpProxy } from '../support/chaos-tcp-proxy.js';

/*
 * The chaos run's fault proxy delays bytes, it never reorders them: TCP does not, and a store
 * client fed a reordered stream matches replies to the wrong commands (a chaos run once counted
 * "executions despite a mismatch" that were only the proxy's doing). Latency is switched on and
 * off while small numbered messages stream through an echo server; what comes back must be the
 * same bytes in the same order.
 */

const echo = createServer((socket: Socket) => socket.pipe(socket));
after(() => echo.close());

test('latency switched on and off mid-stream keeps every byte in order, both ways', async () => {
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  const port = (echo.address() as { port: number }).port;
  const proxy = await startChaosTcpProxy({ host: '127.0.0.1', port });
  after(() => proxy.close());
  const client = createConnection({ host: '127.0.0.1', port: proxy.port });
  client.setNoDelay(true);
  await once(client, 'connect');
  const received: Buffer[] = [];
  client.on('data', (chunk: Buffer) => received.push(chunk));

  const sent: string[] = [];
  const deadline = Date.now() + 5_000;
  for (let round = 0; round < 8 && Date.now() < deadline; round++) {
    proxy.fault({ kind: 'latency', ms: 5 + (round % 3) * 7 });
    for (let i = 0; i < 150; i++) {
      const message = `${round}.${i};`;
      sent.push(message);
      client.write(message);
      if (i === 75) proxy.heal();
      await tick();
    }
    proxy.heal();
  }
  const expected = sent.join('');
  while (Buffer.concat(received).length < expected.length && Date.now() < deadline + 5_000) await sleep(10);
  client.destroy();
  assert.equal(Buffer.concat(received).toString(), expected);
});
