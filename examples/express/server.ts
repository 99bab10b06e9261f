import { pathToFileURL } from 'node:url';
import express from 'express';
// In your app: import { idempotency, idempotencyErrors } from 'idemkit/express'
import { idempotency, idempotencyErrors } from '../../src/adapters/express.js';
import { memoryStore } from '../../src/index.js';

interface Payment {
  id: string;
  amount: number;
  currency: string;
  providerKey: string;
}

/** A mini payments API: POST /payments runs once per Idempotency-Key, retries get the replay. */
export function createApp() {
  const payments = new Map<string, Payment>();
  const app = express();
  // Keyed POSTs need an Authorization header: records are scoped to the caller.
  app.use(idempotency({ store: memoryStore() }));
  // The middleware read the body and put it back: the parser after it reads it as usual.
  app.use(express.json());
  app.post('/payments', (req, res) => {
    const { amount, currency } = req.body as { amount: number; currency: string };
    if (!Number.isInteger(amount) || amount <= 0) {
      res.status(422).json({ error: 'amount must be a positive integer' });
      return;
    }
    // The same key on every retry: hand it to the payment provider so it deduplicates too.
    const providerKey = req.idempotency?.downstreamKey() ?? crypto.randomUUID();
    const payment = { id: `pay_${payments.size + 1}`, amount, currency, providerKey };
    payments.set(payment.id, payment);
    res.status(201).location(`/payments/${payment.id}`).json(payment);
  });

  app.get('/payments/:id', (req, res) => {
    const payment = payments.get(req.params.id);
    res.status(payment ? 200 : 404).json(payment ?? { error: 'not found' });
  });

  // Last: a handler that throws under a key answers a clean 500 and frees the key.
  app.use(idempotencyErrors());
  return { app, payments };
}

/** Serves the payments API at 127.0.0.1:PORT (0 picks a free port). */
export function start(port = Number(process.env.PORT ?? 3000)) {
  const { app } = createApp();
  return new Promise<{ url: string; close(): Promise<void> }>((resolve) => {
    const server = app.listen(port, '127.0.0.1', () => {
      const { port: bound } = server.address() as { port: number };
      const close = () => new Promise<void>((done) => server.close(() => done()));
      resolve({ url: `http://127.0.0.1:${bound}`, close });
    });
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { url } = await start();
  console.log(`payments API on ${url}`);
}
