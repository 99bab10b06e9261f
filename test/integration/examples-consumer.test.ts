import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import { startExample, stopExample } from '../support/example-process.js';

/** Signs like Stripe: `t=<seconds>,v1=<hex HMAC-SHA256 of "t.body">` with the endpoint secret. */
function stripeSignature(body: string, secret: string): string {
  const t = Math.floor(Date.now() / 1_000);
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
}

describe('examples/consumer', () => {
  it('fulfils a redelivered Stripe event once and refuses a forged one', async () => {
    const { url, child } = await startExample('examples/consumer/stripe-webhooks.ts');
    try {
      const event = JSON.stringify({
        id: 'evt_1QexampleA',
        type: 'checkout.session.completed',
        data: { object: { metadata: { order: 'order_42' } } },
      });
      const send = (body: string, secret = 'whsec_example_secret') =>
        fetch(`${url}/webhooks/stripe`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'stripe-signature': stripeSignature(body, secret) },
          body,
          signal: AbortSignal.timeout(5_000),
        });
      const forged = event.replace('order_42', 'order_666');
      assert.equal((await send(forged, 'whsec_guessed')).status, 401);
      const first = await send(event);
      assert.deepEqual(await first.json(), { status: 'processed', result: { fulfilled: 'order_42' } });
      const again = await send(event);
      assert.deepEqual(await again.json(), { status: 'duplicate', result: { fulfilled: 'order_42' } });
      const fulfilled = await fetch(`${url}/fulfilled`, { signal: AbortSignal.timeout(5_000) });
      assert.deepEqual(await fulfilled.json(), [{ event: 'evt_1QexampleA', order: 'order_42' }]);
    } finally {
      await stopExample(child);
    }
  });

  it('express-webhooks.ts: the Express glue fulfils a redelivered event once and refuses a forged one', async () => {
    const { url, child } = await startExample('examples/consumer/express-webhooks.ts');
    try {
      const event = JSON.stringify({
        id: 'evt_1QexampleB',
        type: 'checkout.session.completed',
        data: { object: { metadata: { order: 'order_43' } } },
      });
      const send = (body: string, secret = 'whsec_example_secret') =>
        fetch(`${url}/webhooks/stripe`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'stripe-signature': stripeSignature(body, secret) },
          body,
          signal: AbortSignal.timeout(5_000),
        });

      const forged = await send(event.replace('order_43', 'order_666'), 'whsec_guessed');
      const first = await send(event);
      const again = await send(event);
      const fulfilled = await fetch(`${url}/fulfilled`, { signal: AbortSignal.timeout(5_000) });

      assert.equal(forged.status, 401);
      assert.equal(
        ((await forged.json()) as { type: string }).type,
        'urn:idemkit:problem:webhook-bad-signature',
      );
      assert.deepEqual(await first.json(), { id: 'evt_1QexampleB', status: 'processed' });
      assert.equal(again.status, 200);
      assert.equal(again.headers.get('idempotent-replayed'), 'true');
      assert.deepEqual(await fulfilled.json(), [{ event: 'evt_1QexampleB', order: 'order_43' }]);
    } finally {
      await stopExample(child);
    }
  });
});
