import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  createDeduplicator,
  type Deduplicator,
  verifyWebhook,
  type WebhookSchemeName,
  WebhookVerificationError,
} from '../../src/consumer/index.js';
import { OPERATION_SECRET, operationStores } from '../support/operation-stores.js';

/*
 * verifyWebhook() against signatures computed here the way each sender documents them, and a
 * receiver over a real socket: a forged delivery that carries a genuine event id never runs the
 * handler and never takes that id from the genuine delivery.
 */

const NOW_MS = 1_765_000_000_000;
const now = () => NOW_MS;
const nowSeconds = Math.floor(NOW_MS / 1_000);

const STANDARD_SECRET = `whsec_${randomBytes(24).toString('base64')}`;
const STRIPE_SECRET = `whsec_${randomBytes(16).toString('hex')}`;
const GITHUB_SECRET = 'github-webhook-secret-for-tests';
const SHOPIFY_SECRET = 'shpss_0123456789abcdef0123456789abcdef';

const hmac = (key: string | Buffer, text: string) => createHmac('sha256', key).update(text).digest();

/* How each sender signs, from its documentation. */
const sign = {
  /** standardwebhooks.com: base64 HMAC-SHA256 of `id.timestamp.body`, key = base64 after `whsec_`. */
  standard(id: string, body: string, timestamp = nowSeconds, secret = STANDARD_SECRET) {
    const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
    return {
      'webhook-id': id,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': `v1,${hmac(key, `${id}.${timestamp}.${body}`).toString('base64')}`,
      'content-type': 'application/json',
    };
  },
  /** Stripe: `Stripe-Signature: t=…,v1=<hex HMAC-SHA256 of "t.body">`, key = the endpoint secret as text. */
  stripe(body: string, timestamp = nowSeconds, secret = STRIPE_SECRET) {
    const v1 = hmac(secret, `${timestamp}.${body}`).toString('hex');
    return { 'stripe-signature': `t=${timestamp},v1=${v1},v0=deadbeef`, 'content-type': 'application/json' };
  },
  /** GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`, the delivery id in its own header. */
  github(delivery: string, body: string, secret = GITHUB_SECRET) {
    return {
      'x-hub-signature-256': `sha256=${hmac(secret, body).toString('hex')}`,
      'x-github-delivery': delivery,
      'x-github-event': 'push',
      'content-type': 'application/json',
    };
  },
  /** Shopify: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256 of the body>` with the app's client secret. */
  shopify(webhookId: string, body: string, secret = SHOPIFY_SECRET) {
    return {
      'x-shopify-hmac-sha256': hmac(secret, body).toString('base64'),
      'x-shopify-webhook-id': webhookId,
      'x-shopify-topic': 'orders/create',
      'content-type': 'application/json',
    };
  },
};

const SECRETS: Record<WebhookSchemeName, string> = {
  'standard-webhooks': STANDARD_SECRET,
  stripe: STRIPE_SECRET,
  github: GITHUB_SECRET,
  shopify: SHOPIFY_SECRET,
};

const failsWith = (reason: string) => (error: unknown) =>
  error instanceof WebhookVerificationError && error.reason === reason && error.status === 401;

describe('verifyWebhook: Standard Webhooks', () => {
  it('matches the specification example signature', () => {
    const verified = verifyWebhook({
      scheme: 'standard-webhooks',
      secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
      headers: {
        'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek',
        'webhook-timestamp': '1614265330',
        'webhook-signature': 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
      },
      body: '{"test": 2432232314}',
      now: () => 1_614_265_330_000,
    });
    assert.equal(verified.id, 'msg_p5jXN8AQM9LWM0D4loKWxJek');
    assert.equal(verified.source, 'standard-webhooks');
  });

  it('accepts a genuine delivery, with the id from webhook-id, and one of several signatures', () => {
    const body = '{"type":"invoice.paid","amount":120}';
    const headers = sign.standard('msg_1', body);
    headers['webhook-signature'] =
      `v1,${Buffer.alloc(32).toString('base64')} ${headers['webhook-signature']}`;
    const verified = verifyWebhook({
      scheme: 'standard-webhooks',
      secret: STANDARD_SECRET,
      headers,
      body,
      now,
    });
    assert.deepEqual(verified, {
      source: 'standard-webhooks',
      id: 'msg_1',
      timestamp: nowSeconds,
      text: body,
    });
  });

  it('refuses a wrong secret, a changed body, a stale or future timestamp, and a missing signature', () => {
    const body = '{"a":1}';
    const headers = sign.standard('msg_2', body);
    const check = (over: Partial<Parameters<typeof verifyWebhook>[0]>) => () =>
      verifyWebhook({ scheme: 'standard-webhooks', secret: STANDARD_SECRET, headers, body, now, ...over });
    assert.throws(
      check({ secret: `whsec_${randomBytes(24).toString('base64')}` }),
      failsWith('bad-signature'),
    );
    assert.throws(check({ body: '{"a":2}' }), failsWith('bad-signature'));
    assert.throws(check({ body: '{ "a": 1 }' }), failsWith('bad-signature'), 'the raw bytes are signed');
    assert.throws(
      check({ headers: sign.standard('msg_2', body, nowSeconds - 301) }),
      failsWith('stale-timestamp'),
    );
    assert.throws(
      check({ headers: sign.standard('msg_2', body, nowSeconds + 301) }),
      failsWith('stale-timestamp'),
    );
    assert.doesNotThrow(check({ headers: sign.standard('msg_2', body, nowSeconds - 299) }));
    assert.throws(check({ headers: { 'webhook-id': 'msg_2' } }), failsWith('missing-signature'));
    // The id is signed: a genuine signature moved to another id no longer matches.
    assert.throws(check({ headers: { ...headers, 'webhook-id': 'msg_other' } }), failsWith('bad-signature'));
  });

  it('verifies during a secret rotation (any listed secret)', () => {
    const body = '{}';
    const old = `whsec_${randomBytes(24).toString('base64')}`;
    const headers = sign.standard('msg_3', body, nowSeconds, old);
    const verified = verifyWebhook({
      scheme: 'standard-webhooks',
      secret: [STANDARD_SECRET, old],
      headers,
      body,
      now,
    });
    assert.equal(verified.id, 'msg_3');
  });
});

describe('verifyWebhook: Stripe', () => {
  it('accepts a genuine event, the id from the body, ignoring v0', () => {
    const body = JSON.stringify({ id: 'evt_1NG8Du2eZvKYlo2CUI79vXWy', type: 'payment_intent.succeeded' });
    const verified = verifyWebhook({
      scheme: 'stripe',
      secret: STRIPE_SECRET,
      headers: sign.stripe(body),
      body,
      now,
    });
    assert.equal(verified.id, 'evt_1NG8Du2eZvKYlo2CUI79vXWy');
    assert.equal(verified.timestamp, nowSeconds);
  });

  it('refuses a forged signature, a changed body, a replay outside the tolerance; a body without id', () => {
    const body = JSON.stringify({ id: 'evt_2', type: 'charge.refunded' });
    const check =
      (headers: Record<string, string>, text = body, toleranceSeconds?: number) =>
      () =>
        verifyWebhook({
          scheme: 'stripe',
          secret: STRIPE_SECRET,
          headers,
          body: text,
          now,
          ...(toleranceSeconds === undefined ? {} : { toleranceSeconds }),
        });
    assert.throws(check(sign.stripe(body, nowSeconds, 'whsec_forged')), failsWith('bad-signature'));
    assert.throws(check(sign.stripe(body), body.replace('evt_2', 'evt_3')), failsWith('bad-signature'));
    assert.throws(check(sign.stripe(body, nowSeconds - 600)), failsWith('stale-timestamp'));
    assert.doesNotThrow(check(sign.stripe(body, nowSeconds - 600), body, 900));
    assert.throws(check({ 'stripe-signature': `t=${nowSeconds}` }), failsWith('missing-signature'));
    const noId = '{"type":"x"}';
    assert.throws(check(sign.stripe(noId), noId), failsWith('missing-id'));
  });
});

describe('verifyWebhook: GitHub and Shopify', () => {
  it('GitHub: the id is X-GitHub-Delivery; a bad signature or a missing one is refused', () => {
    const body = '{"ref":"refs/heads/main"}';
    const headers = sign.github('72d3162e-cc78-11e3-81ab-4c9367dc0958', body);
    const verified = verifyWebhook({ scheme: 'github', secret: GITHUB_SECRET, headers, body });
    assert.deepEqual(verified, { source: 'github', id: '72d3162e-cc78-11e3-81ab-4c9367dc0958', text: body });
    assert.throws(
      () => verifyWebhook({ scheme: 'github', secret: 'other-secret', headers, body }),
      failsWith('bad-signature'),
    );
    const { 'x-hub-signature-256': _, ...unsigned } = headers;
    assert.throws(
      () => verifyWebhook({ scheme: 'github', secret: GITHUB_SECRET, headers: unsigned, body }),
      failsWith('missing-signature'),
    );
    const { 'x-github-delivery': __, ...noId } = headers;
    assert.throws(
      () => verifyWebhook({ scheme: 'github', secret: GITHUB_SECRET, headers: noId, body }),
      failsWith('missing-id'),
    );
  });

  it('Shopify: base64 HMAC, the id is X-Shopify-Webhook-Id; header names in any case', () => {
    const body = '{"id":820982911946154508,"email":"jon@example.com"}';
    const headers = sign.shopify('b54557e4-bdd9-4b37-8a5f-bf7d70bcd043', body);
    const capitalised = Object.fromEntries(
      Object.entries(headers).map(([n, v]) => [n.replace(/(^|-)(\w)/g, (m) => m.toUpperCase()), v]),
    );
    const verified = verifyWebhook({ scheme: 'shopify', secret: SHOPIFY_SECRET, headers: capitalised, body });
    assert.equal(verified.id, 'b54557e4-bdd9-4b37-8a5f-bf7d70bcd043');
    assert.throws(
      () => verifyWebhook({ scheme: 'shopify', secret: SHOPIFY_SECRET, headers, body: `${body} ` }),
      failsWith('bad-signature'),
    );
  });
});

/* A receiver over a real socket: raw body → verifyWebhook → once → 200, or 401 with nothing written. */

interface Receiver {
  url: string;
  handled: string[];
  server: Server;
}

function readRaw(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

async function startReceiver(dedup: Deduplicator | undefined): Promise<Receiver> {
  const handled: string[] = [];
  const server = createServer(async (req, res) => {
    const scheme = (req.url ?? '').slice(1) as WebhookSchemeName;
    const body = await readRaw(req);
    try {
      const event = verifyWebhook({ scheme, secret: SECRETS[scheme], headers: req.headers, body, now });
      const handle = () => {
        handled.push(`${event.source}:${event.id}:${event.text}`);
        return { ok: true };
      };
      const outcome = dedup ? await dedup.once(event, handle) : { status: 'processed', result: handle() };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(outcome));
    } catch (error) {
      const status = error instanceof WebhookVerificationError ? error.status : 500;
      res.writeHead(status).end(String((error as Error).message));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, handled, server };
}

async function post(url: string, headers: Record<string, string>, body: string) {
  const response = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(5_000) });
  return { status: response.status, text: await response.text() };
}

const stores = operationStores('webhook');

describe('negative control: a receiver that does not de-duplicate', () => {
  let receiver: Receiver;
  before(async () => {
    receiver = await startReceiver(undefined);
  });
  after(() => receiver.server.close());

  it('runs a redelivered genuine event twice', async () => {
    const body = JSON.stringify({ id: 'evt_nc', type: 'x' });
    await post(`${receiver.url}/stripe`, sign.stripe(body), body);
    await post(`${receiver.url}/stripe`, sign.stripe(body), body);
    assert.equal(receiver.handled.length, 2);
  });
});

for (const { name, make } of stores) {
  describe(`a webhook receiver on the ${name} store`, () => {
    let receiver: Receiver;
    let dedup: Deduplicator;
    before(async () => {
      dedup = createDeduplicator({ store: await make(), secret: OPERATION_SECRET, retentionMs: 60_000 });
      receiver = await startReceiver(dedup);
    });
    after(async () => {
      receiver.server.close();
      await dedup.close();
    });

    const cases: [WebhookSchemeName, string, (id: string, body: string) => Record<string, string>][] = [
      ['standard-webhooks', 'msg_real', (id, body) => sign.standard(id, body)],
      ['stripe', 'evt_real', (_id, body) => sign.stripe(body)],
      ['github', 'delivery-real', (id, body) => sign.github(id, body)],
      ['shopify', 'shopify-real', (id, body) => sign.shopify(id, body)],
    ];
    for (const [scheme, id, signGenuine] of cases) {
      it(`${scheme}: a forged delivery with the genuine id never runs and never blocks the genuine one`, async () => {
        const genuine = JSON.stringify({ id, amount: 100 });
        const forged = JSON.stringify({ id, amount: 999_999 });
        // Forged: the attacker knows the id but not the secret; signs with a guess, or copies a
        // genuine signature of another body.
        const forgedHeaders = { ...signGenuine(id, genuine) };
        const first = await post(`${receiver.url}/${scheme}`, forgedHeaders, forged);
        assert.equal(first.status, 401);
        const wrongKey: Record<WebhookSchemeName, () => Record<string, string>> = {
          'standard-webhooks': () =>
            sign.standard(id, forged, nowSeconds, `whsec_${randomBytes(24).toString('base64')}`),
          stripe: () => sign.stripe(forged, nowSeconds, 'whsec_guess'),
          github: () => sign.github(id, forged, 'guess'),
          shopify: () => sign.shopify(id, forged, 'guess'),
        };
        assert.equal((await post(`${receiver.url}/${scheme}`, wrongKey[scheme](), forged)).status, 401);
        assert.equal(receiver.handled.filter((h) => h.includes('999999')).length, 0);

        const real = await post(`${receiver.url}/${scheme}`, signGenuine(id, genuine), genuine);
        assert.equal(real.status, 200);
        assert.deepEqual(JSON.parse(real.text), { status: 'processed', result: { ok: true } });
        const again = await post(`${receiver.url}/${scheme}`, signGenuine(id, genuine), genuine);
        assert.deepEqual(JSON.parse(again.text), { status: 'duplicate', result: { ok: true } });
        // A forgery after the genuine event is refused too, without touching its record.
        assert.equal((await post(`${receiver.url}/${scheme}`, wrongKey[scheme](), forged)).status, 401);
        assert.deepEqual(
          receiver.handled.filter((h) => h.startsWith(`${scheme}:${id}:`)),
          [`${scheme}:${id}:${genuine}`],
        );
      });
    }
  });
}
