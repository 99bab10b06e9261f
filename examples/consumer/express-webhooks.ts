import { pathToFileURL } from 'node:url';
import express from 'express';
// In your app: import { webhookReceiver } from 'idemkit/express'
//              import { createDeduplicator } from 'idemkit/consumer'
import { webhookReceiver } from '../../src/adapters/express.js';
import { createDeduplicator } from '../../src/consumer/index.js';
import { memoryStore } from '../../src/index.js';

/**
 * A Stripe webhook endpoint on Express with idemkit's glue: `webhookReceiver()` reads the raw
 * body, verifies the signature before anything is recorded, runs the handler once per event id
 * and answers every outcome (200, 401, 409, 413, 500) the way Stripe understands. Use
 * sqliteStore / postgresStore / redisStore in production, so processed ids outlive a restart.
 */
export function createApp(secret = process.env.STRIPE_WEBHOOK_SECRET ?? 'whsec_example_secret') {
  const dedup = createDeduplicator({
    store: memoryStore({ onWarning() {} }),
    retentionMs: 3 * 24 * 3_600_000,
  });
  const fulfilled: { event: string; order: string }[] = [];
  const app = express();

  // Before express.json(): the receiver needs the bytes Stripe signed, not a parsed object.
  app.post(
    '/webhooks/stripe',
    webhookReceiver({ dedup, scheme: 'stripe', secret }, (event) => {
      const data = JSON.parse(event.text) as {
        type: string;
        data: { object: { metadata: { order: string } } };
      };
      if (data.type !== 'checkout.session.completed') return { ignored: data.type };
      const order = data.data.object.metadata.order;
      fulfilled.push({ event: event.id, order });
      return { fulfilled: order };
    }),
  );
  app.use(express.json());
  app.get('/fulfilled', (_req, res) => {
    res.json(fulfilled);
  });
  return { app, fulfilled, dedup };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { app } = createApp();
  const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
    const { port } = server.address() as { port: number };
    console.log(`Stripe webhooks (Express) for the payments API on http://127.0.0.1:${port}`);
  });
}
