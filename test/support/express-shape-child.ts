/*
 * Run with `node --allow-natives-syntax --import tsx`: serves one captured Express answer and
 * prints whether the response object still has V8's fast properties once it has been sent.
 * The capture overrides res.writeHead/write/end/destroy while it holds the answer; putting them
 * back with `delete` turned every Express response into a slow dictionary object.
 */
import type { AddressInfo } from 'node:net';
import express from 'express';
import { idempotency } from '../../src/adapters/express.js';
import { memoryStore } from '../../src/index.js';

const hasFastProperties = new Function('o', 'return %HasFastProperties(o)') as (o: object) => boolean;
const app = express();
app.use(idempotency({ store: memoryStore({ onWarning() {} }), sweepIntervalMs: 0, onWarning() {} }));
const shapes: boolean[] = [];
app.post('/pay', (_req, res) => {
  res.on('finish', () => shapes.push(hasFastProperties(res)));
  res.status(201).json({ ok: true });
});
const server = app.listen(0, '127.0.0.1', async () => {
  const { port } = server.address() as AddressInfo;
  for (const key of ['shape-1', 'shape-2']) {
    await fetch(`http://127.0.0.1:${port}/pay`, {
      method: 'POST',
      headers: { authorization: 'Bearer shape', 'idempotency-key': key, 'content-type': 'application/json' },
      body: '{}',
    });
  }
  console.log(JSON.stringify({ fast: shapes }));
  server.closeAllConnections();
  server.close();
});
