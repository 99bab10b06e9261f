import { json } from 'node:stream/consumers';
import { pathToFileURL } from 'node:url';
import Koa from 'koa';
// In your app: import { idempotency, type IdempotencyState } from 'idemkit/koa'
import { type IdempotencyState, idempotency } from '../../src/adapters/koa.js';
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
  const app = new Koa<IdempotencyState>();
  // Keyed POSTs need an Authorization header: records are scoped to the caller.
  app.use(idempotency({ store: memoryStore() }));
  app.use(async (ctx) => {
    if (ctx.method === 'POST' && ctx.path === '/payments') {
      // idempotency() read the body and put it back: parse it here, or with a body parser after it.
      const { amount, currency } = (await json(ctx.req)) as { amount: number; currency: string };
      ctx.assert(Number.isInteger(amount) && amount > 0, 422, 'amount must be a positive integer');
      // The same key on every retry: hand it to the payment provider so it deduplicates too.
      const providerKey = ctx.state.idempotency?.downstreamKey() ?? crypto.randomUUID();
      const payment = { id: `pay_${payments.size + 1}`, amount, currency, providerKey };
      payments.set(payment.id, payment);
      ctx.status = 201;
      ctx.set('location', `/payments/${payment.id}`);
      ctx.body = payment;
    } else if (ctx.method === 'GET' && ctx.path.startsWith('/payments/')) {
      const payment = payments.get(ctx.path.slice('/payments/'.length));
      ctx.status = payment ? 200 : 404;
      ctx.body = payment ?? { error: 'not found' };
    }
  });
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
