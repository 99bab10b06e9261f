// The body the Express middleware reads and puts back is the app's to read or to leave: a route
// that never reads it, or one whose parser does, answers, and the next requests on the same
// keep-alive connection are read and answered as usual (Node no longer discards a put-back body
// when the response finishes: it is already all in memory).
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { describe, it } from 'node:test';
import { idempotency, idempotencyErrors } from '../../src/adapters/express.js';
import { memoryStore } from '../../src/index.js';
import { type ExpressMajor, expressOf, listen, quiet } from '../support/express-reference.js';

interface Answer {
  status: number;
  replayed: string | undefined;
  body: string;
}

function post(agent: Agent, url: string, path: string, key: string, body: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}${path}`,
      {
        agent,
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: 'Bearer keep-alive-user',
          'idempotency-key': key,
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            replayed: res.headers['idempotent-replayed'] as string | undefined,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(5_000, () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
    req.end(body);
  });
}

for (const major of [4, 5] as ExpressMajor[]) {
  describe(`Express ${major}: a put-back body on a keep-alive connection`, () => {
    it('routes that leave the body unread or parse it answer, all on one connection', async () => {
      const express = expressOf(major);
      const app = express();
      quiet(app);
      const ports = new Set<number>();
      app.use((req, _res, next) => {
        ports.add(req.socket.remotePort ?? -1);
        next();
      });
      app.use(idempotency({ store: memoryStore({ onWarning() {} }), sweepIntervalMs: 0, onWarning() {} }));
      app.post('/unread', (_req, res) => {
        res.status(201).json({ route: 'unread' });
      });
      app.post('/parsed', express.json(), (req, res) => {
        res.status(201).json({ route: 'parsed', amount: (req.body as { amount: number }).amount });
      });
      app.use(idempotencyErrors());
      const server = await listen(app);
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const answers: Answer[] = [];
        for (let i = 0; i < 3; i++) {
          answers.push(await post(agent, server.url, '/unread', `unread-${i}`, `{"amount":${i}}`));
          answers.push(await post(agent, server.url, '/parsed', `parsed-${i}`, `{"amount":${i}}`));
        }
        for (const [i, answer] of answers.entries()) {
          assert.equal(answer.status, 201, `request ${i}: ${answer.body}`);
          assert.equal(answer.replayed, 'false');
        }
        assert.deepEqual(JSON.parse((answers[5] as Answer).body), { route: 'parsed', amount: 2 });

        const retry = await post(agent, server.url, '/unread', 'unread-0', '{"amount":0}');
        assert.equal(retry.status, 201);
        assert.equal(retry.replayed, 'true');
        assert.deepEqual(JSON.parse(retry.body), { route: 'unread' });
        assert.equal(ports.size, 1, 'every request came over the one keep-alive connection');
      } finally {
        agent.destroy();
        await server.close();
      }
    });
  });
}
