import { createServer, type IncomingMessage } from 'node:http';
import { pathToFileURL } from 'node:url';
// In your app: import { createDeduplicator, verifyWebhook, … } from 'idemkit/consumer'
import {
  createDeduplicator,
  RedeliverLaterError,
  verifyWebhook,
  WebhookVerificationError,
} from '../../src/consumer/index.js';
import { memoryStore } from '../../src/index.js';

/**
 * A Stripe webhook endpoint: verify the signature on the raw body, then fulfil each event once,
 * however often Stripe redelivers it. Use sqliteStore / postgresStore / redisStore in production,
 * so processed ids outlive a restart and are shared by every instance.
 */
export function createReceiver(secret = process.env.STRIPE_WEBHOOK_SECRET ?? 'whsec_example_secret') {
  const dedup = createDeduplicator({ store: memoryStore(), retentionMs: 3 * 24 * 3_600_000 });
  const fulfilled: { event: string; order: string }[] = [];

  const server = createServer(async (req, res) => {
    if (req.method === 'GET' && req.url === '/fulfilled') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(fulfilled));
      return;
    }
    if (req.method !== 'POST' || req.url !== '/webhooks/stripe') {
      res.writeHead(404).end();
      return;
    }
    try {
      // 1. Verify before anything is written: a forgery never reaches once().
      const event = verifyWebhook({
        scheme: 'stripe',
        secret,
        headers: req.headers,
        body: await rawBody(req),
      });
      const data = JSON.parse(event.text) as {
        type: string;
        data: { object: { metadata: { order: string } } };
      };
      // 2. Once per event id: a redelivery gets the first result, the handler does not run again.
      const outcome = await dedup.once(event, () => {
        if (data.type !== 'checkout.session.completed') return { ignored: data.type };
        const order = data.data.object.metadata.order;
        fulfilled.push({ event: event.id, order });
        return { fulfilled: order };
      });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(outcome));
    } catch (error) {
      if (error instanceof WebhookVerificationError) {
        res.writeHead(error.status).end(error.reason);
      } else if (error instanceof RedeliverLaterError) {
        // The first delivery is still being handled: a non-2xx makes Stripe try again later.
        res.writeHead(409, { 'retry-after': String(Math.ceil(error.retryAfterMs / 1_000)) }).end();
      } else {
        // The handler failed: the event is not marked processed, Stripe's retry runs it again.
        res.writeHead(500).end();
      }
    }
  });
  return { server, fulfilled, dedup };
}

function rawBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { server } = createReceiver();
  server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
    const { port } = server.address() as { port: number };
    console.log(`Stripe webhooks for the payments API on http://127.0.0.1:${port}`);
  });
}
