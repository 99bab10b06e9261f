import { Hono } from 'hono';
// In your app: import { idempotency, type IdempotencyVariables } from 'idemkit/hono'
import { type IdempotencyVariables, idempotency } from '../../src/adapters/hono.js';
import { type IdempotencyStore, memoryStore } from '../../src/index.js';

export interface Payment {
  id: string;
  amount: number;
  currency: string;
  providerKey: string;
}

/**
 * A mini payments API: POST /payments runs once per Idempotency-Key, retries get the replay.
 * Runtime-neutral (no Node server in here): Node, Bun, Deno and Workers all serve `app.fetch`.
 */
export function createApp(store: IdempotencyStore = memoryStore()) {
  const payments = new Map<string, Payment>();
  const app = new Hono<{ Variables: IdempotencyVariables }>();

  // Keyed POSTs need an Authorization header: records are scoped to the caller.
  app.use('/payments', idempotency({ store }));

  app.post('/payments', async (c) => {
    const { amount, currency } = await c.req.json<{ amount: number; currency: string }>();
    if (!Number.isInteger(amount) || amount <= 0)
      return c.json({ error: 'amount must be a positive integer' }, 422);
    // The same key on every retry: hand it to the payment provider so it deduplicates too.
    const providerKey = c.var.idempotency?.downstreamKey() ?? crypto.randomUUID();
    const payment = { id: `pay_${payments.size + 1}`, amount, currency, providerKey };
    payments.set(payment.id, payment);
    c.header('location', `/payments/${payment.id}`);
    return c.json(payment, 201);
  });

  app.get('/payments/:id', (c) => {
    const payment = payments.get(c.req.param('id'));
    return payment ? c.json(payment) : c.json({ error: 'not found' }, 404);
  });

  return { app, payments };
}
