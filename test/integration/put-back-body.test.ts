import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { describe, it } from 'node:test';
import { readAndPutBack } from '../../src/adapters/put-back-body.js';

/*
 * readAndPutBack over real sockets: the bytes are read once for the fingerprint and put back, so
 * whatever reads the request afterwards (a body parser, the handler) gets it untouched. A body
 * that came with its headers is taken on the next turn of the event loop, without a listener on
 * the request; one still on its way is read as it comes; a client that leaves gives `null`.
 */

type Outcome = { body: string | null | undefined; after: string; readableListeners: number };

/** A server whose handler reads and puts back, then reads the request again as a parser would. */
async function withServer(
  maxBytes: number,
  run: (port: number, outcomes: Outcome[]) => Promise<void>,
): Promise<void> {
  const outcomes: Outcome[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let readableSubscriptions = 0;
    const on = req.on.bind(req);
    // Counts 'readable' subscriptions: the whole-body path must add none.
    req.on = ((event: string, listener: (...args: unknown[]) => void) => {
      if (event === 'readable') readableSubscriptions++;
      return on(event, listener);
    }) as typeof req.on;
    void readAndPutBack(req, maxBytes).then(async (body) => {
      // Before the second read below, whose async iterator subscribes to 'readable' itself.
      const readableListeners = readableSubscriptions;
      if (body === null || body === undefined) {
        outcomes.push({ body, after: '', readableListeners });
        if (!res.destroyed) res.writeHead(body === undefined ? 413 : 499, { connection: 'close' }).end();
        return;
      }
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const after = Buffer.concat(chunks).toString();
      outcomes.push({ body: Buffer.from(body).toString(), after, readableListeners });
      res.writeHead(200).end(after);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await run((server.address() as AddressInfo).port, outcomes);
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

/** Writes `parts` to a raw socket `gapMs` apart; resolves with the status line's code ('' if none). */
function rawRequest(port: number, parts: string[], gapMs: number, destroyAfter = false): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.on('data', (data) => {
      answer += data.toString();
    });
    socket.on('close', () => resolve(/^HTTP\/1\.1 (\d+)/.exec(answer)?.[1] ?? ''));
    socket.on('error', reject);
    socket.on('connect', async () => {
      for (const [i, part] of parts.entries()) {
        if (i > 0) await new Promise((r) => setTimeout(r, gapMs));
        socket.write(part);
      }
      if (destroyAfter) setTimeout(() => socket.destroy(), gapMs);
      else socket.end();
    });
  });
}

const head = (length: number) =>
  `POST /pay HTTP/1.1\r\nhost: x\r\ncontent-length: ${length}\r\nconnection: close\r\n\r\n`;

/** Resolves once `outcomes` has `count` entries; fails after 5 s rather than hang. */
async function settled(outcomes: Outcome[], count: number): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (outcomes.length < count) {
    if (Date.now() > deadline) throw new Error(`only ${outcomes.length} of ${count} requests settled`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('readAndPutBack: the body is read once and put back', () => {
  it('a body that came with its headers is taken without a listener and read again whole', async () => {
    await withServer(1_000, async (port, outcomes) => {
      const body = '{"amount":12,"currency":"eur"}';
      assert.equal(await rawRequest(port, [head(body.length) + body], 0), '200');
      await settled(outcomes, 1);
      assert.deepEqual(outcomes[0], { body, after: body, readableListeners: 0 });
    });
  });

  it('a body still arriving (three writes 40 ms apart) is read as it comes, then read again whole', async () => {
    await withServer(1_000, async (port, outcomes) => {
      assert.equal(await rawRequest(port, [head(12), '{"amo', 'unt":7}'], 40), '200');
      await settled(outcomes, 1);
      assert.equal(outcomes[0]?.body, '{"amount":7}');
      assert.equal(outcomes[0]?.after, '{"amount":7}');
      assert.equal(outcomes[0]?.readableListeners, 1, 'the body came in pieces: read through a listener');
    });
  });

  it('an empty body is not read: the stream still ends for the reader after', async () => {
    await withServer(1_000, async (port, outcomes) => {
      assert.equal(await rawRequest(port, [head(0)], 0), '200');
      await settled(outcomes, 1);
      assert.deepEqual(outcomes[0], { body: '', after: '', readableListeners: 0 });
    });
  });

  it('a body over the limit is refused (undefined), whole or in pieces', async () => {
    await withServer(10, async (port, outcomes) => {
      const body = 'x'.repeat(50);
      assert.equal(await rawRequest(port, [head(50) + body], 0), '413');
      assert.equal(await rawRequest(port, [head(50), body.slice(0, 20), body.slice(20)], 40), '413');
      await settled(outcomes, 2);
      assert.deepEqual(
        outcomes.map((o) => o.body),
        [undefined, undefined],
      );
    });
  });

  it('a client that leaves mid-body gives null within 5 s (no hang), before or after the read began', async () => {
    await withServer(1_000, async (port, outcomes) => {
      // Leaves at once after the first part (likely before the next turn), then after 40 ms.
      await rawRequest(port, [`${head(100)}{"half":`], 0, true);
      await rawRequest(port, [head(100), '{"half":'], 40, true);
      await settled(outcomes, 2);
      assert.deepEqual(
        outcomes.map((o) => o.body),
        [null, null],
      );
    });
  });
});
