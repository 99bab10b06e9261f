import { pathToFileURL } from 'node:url';
import Fastify from 'fastify';
// In your app: import idempotency from 'idemkit/fastify'
import idempotency from '../../src/adapters/fastify.js';
import { memoryStore } from '../../src/index.js';

interface Payment {
  id: string;
  amount: number;
  currency: string;
  providerKey: string;
}

const paymentBody = {
  type: 'object',
  required: ['amount', 'currency'],
  properties: { amount: { type: 'integer', minimum: 1 }, currency: { type: 'string' } },
} as const;

/** A mini payments API: POST /payments runs once per Idempotency-Key, retries get the replay. */
export async function createApp() {
  const payments = new Map<string, Payment>();
  const app = Fastify();
  // Keyed POSTs need an Authorization header: records are scoped to the caller.
  await app.register(idempotency, { store: memoryStore() });

  app.post('/payments', { schema: { body: paymentBody } }, async (request, reply) => {
    const { amount, currency } = request.body as { amount: number; currency: string };
    // The same key on every retry: hand it to the payment provider so it deduplicates too.
    const providerKey = request.idempotency?.downstreamKey() ?? crypto.randomUUID();
    const payment = { id: `pay_${payments.size + 1}`, amount, currency, providerKey };
    payments.set(payment.id, payment);
    return reply.code(201).header('location', `/payments/${payment.id}`).send(payment);
  });

  app.get('/payments/:id', async (request, reply) => {
    const payment = payments.get((request.params as { id: string }).id);
    return payment ?? reply.code(404).send({ error: 'not found' });
  });
  return { app, payments };
}

/** Serves the payments API at 127.0.0.1:PORT (0 picks a free port). */
export async function start(port = Number(process.env.PORT ?? 3000)) {
  const { app } = await createApp();
  const url = await app.listen({ port, host: '127.0.0.1' });
  return { url, close: () => app.close() };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { url } = await start();
  console.log(`payments API on ${url}`);
}
