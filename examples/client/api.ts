import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readNodeBody } from '../../src/adapters/node-http.js';
import { handleNodeRequest } from '../../src/adapters/node-http-flow.js';
import { createIdempotency, memoryStore } from '../../src/index.js';

/** What the API publishes about itself: charges take an Idempotency-Key, refunds take none. */
const OPENAPI = {
  openapi: '3.0.3',
  info: { title: 'Example payments API', version: '1.0.0' },
  paths: {
    '/charges': {
      post: {
        operationId: 'createCharge',
        parameters: [{ $ref: '#/components/parameters/IdempotencyKey' }],
        requestBody: { content: { 'application/json': { schema: { $ref: '#/components/schemas/Charge' } } } },
        responses: { '201': { description: 'Charged' } },
      },
    },
    '/charges/{id}/refunds': {
      post: {
        operationId: 'refundCharge',
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
        responses: { '201': { description: 'Refunded' } },
      },
    },
    '/ledger': { get: { operationId: 'ledger', responses: { '200': { description: 'Executions so far' } } } },
  },
  components: {
    parameters: {
      IdempotencyKey: { name: 'Idempotency-Key', in: 'header', required: true, schema: { type: 'string' } },
    },
    schemas: {
      Charge: { type: 'object', properties: { amount: { type: 'integer' }, currency: { type: 'string' } } },
    },
  },
};

/**
 * A payments API with idemkit in front of its charges, on a network that loses the first answer
 * of every POST after the work was done: the client has to retry, and only a key makes that safe.
 */
export async function startApi(): Promise<{ url: string; close(): Promise<void> }> {
  // One process holds the records (memoryStore warns about that once; this example is one process).
  const engine = createIdempotency({ store: memoryStore({ onWarning() {} }), required: false });
  const executions = { charges: 0, refunds: 0 };
  const answered = new Set<string>();

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = (await readNodeBody(req, 1 << 20)) ?? new Uint8Array();
    if (req.method === 'GET' && req.url === '/openapi.json') return void json(res, 200, OPENAPI);
    if (req.method === 'GET' && req.url === '/ledger') return void json(res, 200, executions);
    const target = `${req.method} ${req.url} ${req.headers['idempotency-key'] ?? ''}`;
    if (req.method === 'POST' && !answered.has(target)) {
      answered.add(target);
      (res as unknown as { end: () => void }).end = () => res.socket?.destroy(); // the answer is lost
    }
    await handleNodeRequest(engine, req, res, body, () => {
      if (req.url === '/charges') {
        executions.charges++;
        return void json(res, 201, { id: `ch_${randomBytes(4).toString('hex')}`, status: 'succeeded' });
      }
      if (/^\/charges\/[^/]+\/refunds$/.test(req.url ?? '')) {
        executions.refunds++;
        return void json(res, 201, { id: `re_${randomBytes(4).toString('hex')}` });
      }
      json(res, 404, { error: 'not found' });
    });
  }

  const server = createServer((req, res) => void handle(req, res).catch(() => res.destroy()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function json(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));
}
