import { createHmac } from 'node:crypto';
import { type HeaderInput, headerValue } from '../core/request.js';

/*
 * How each sender signs, and where it puts the event id. A scheme reads the signature
 * candidates and the signed bytes from the request; verify-webhook.ts does the comparison
 * (constant-time), the timestamp window and the errors, the same for all of them.
 */

export type WebhookSchemeName = 'standard-webhooks' | 'stripe' | 'github' | 'shopify';

export interface SignedParts {
  /** The signatures the request claims, decoded to bytes (several during a secret rotation). */
  candidates: Buffer[];
  /** Seconds since the epoch, when the scheme signs a timestamp. */
  timestamp?: number;
  /** The HMAC-SHA-256 of what this scheme signs, under one secret. */
  expected(secret: string): Buffer;
  /** Where the sender keeps the event id: a header here, or the body (read after verification). */
  idFromHeaders?: string;
}

export interface WebhookScheme {
  name: WebhookSchemeName;
  /** `undefined` when the request carries no signature this scheme can read. */
  parse(headers: HeaderInput, body: Buffer): SignedParts | undefined;
  /** The event id, from the verified request. */
  eventId(parts: SignedParts, body: Buffer): string | undefined;
}

const hmac = (key: string | Buffer, ...parts: (string | Buffer)[]): Buffer => {
  const mac = createHmac('sha256', key);
  for (const part of parts) mac.update(part);
  return mac.digest();
};

const HEX = /^[0-9a-f]+$/i;
const fromHex = (text: string): Buffer | undefined =>
  HEX.test(text) && text.length % 2 === 0 ? Buffer.from(text, 'hex') : undefined;

/** Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64> …`; `whsec_<base64>` secrets. */
const standardWebhooks: WebhookScheme = {
  name: 'standard-webhooks',
  parse(headers, body) {
    const id = headerValue(headers, 'webhook-id');
    const stamp = headerValue(headers, 'webhook-timestamp');
    const signature = headerValue(headers, 'webhook-signature');
    if (!id || !stamp || !signature || !/^\d{1,12}$/.test(stamp)) return undefined;
    const candidates: Buffer[] = [];
    for (const entry of signature.split(' ')) {
      const [version, value] = entry.split(',', 2);
      if (version === 'v1' && value) candidates.push(Buffer.from(value, 'base64'));
    }
    return {
      candidates,
      timestamp: Number(stamp),
      idFromHeaders: id,
      // The key is the base64 after `whsec_`; the signed content is `id.timestamp.body`.
      expected: (secret) =>
        hmac(Buffer.from(secret.replace(/^whsec_/, ''), 'base64'), `${id}.${stamp}.`, body),
    };
  },
  eventId: (parts) => parts.idFromHeaders,
};

/** Stripe: `Stripe-Signature: t=<seconds>,v1=<hex>[,v1=…]` over `t.body`; the event id is the body's `id`. */
const stripe: WebhookScheme = {
  name: 'stripe',
  parse(headers, body) {
    const header = headerValue(headers, 'stripe-signature');
    if (!header) return undefined;
    let stamp: string | undefined;
    const candidates: Buffer[] = [];
    for (const item of header.split(',')) {
      const at = item.indexOf('=');
      const name = item.slice(0, at).trim();
      const value = item.slice(at + 1).trim();
      if (name === 't') stamp = value;
      else if (name === 'v1') {
        const bytes = fromHex(value);
        if (bytes) candidates.push(bytes);
      }
    }
    if (!stamp || !/^\d{1,12}$/.test(stamp)) return undefined;
    const t = stamp;
    return { candidates, timestamp: Number(t), expected: (secret) => hmac(secret, `${t}.`, body) };
  },
  eventId: (_parts, body) => jsonField(body, 'id'),
};

/** GitHub: `X-Hub-Signature-256: sha256=<hex>` over the body; the id is `X-GitHub-Delivery`. */
const github: WebhookScheme = {
  name: 'github',
  parse(headers, body) {
    const header = headerValue(headers, 'x-hub-signature-256');
    if (!header?.startsWith('sha256=')) return undefined;
    const bytes = fromHex(header.slice('sha256='.length));
    const id = headerValue(headers, 'x-github-delivery');
    return {
      candidates: bytes ? [bytes] : [],
      ...(id ? { idFromHeaders: id } : {}),
      expected: (secret) => hmac(secret, body),
    };
  },
  eventId: (parts) => parts.idFromHeaders,
};

/** Shopify: `X-Shopify-Hmac-Sha256: <base64>` over the body; the id is `X-Shopify-Webhook-Id`. */
const shopify: WebhookScheme = {
  name: 'shopify',
  parse(headers, body) {
    const header = headerValue(headers, 'x-shopify-hmac-sha256');
    if (!header) return undefined;
    const id = headerValue(headers, 'x-shopify-webhook-id');
    return {
      candidates: [Buffer.from(header, 'base64')],
      ...(id ? { idFromHeaders: id } : {}),
      expected: (secret) => hmac(secret, body),
    };
  },
  eventId: (parts) => parts.idFromHeaders,
};

export const WEBHOOK_SCHEMES: Readonly<Record<WebhookSchemeName, WebhookScheme>> = Object.freeze({
  'standard-webhooks': standardWebhooks,
  stripe,
  github,
  shopify,
});

function jsonField(body: Buffer, field: string): string | undefined {
  try {
    const value = (JSON.parse(body.toString('utf8')) as Record<string, unknown>)[field];
    return typeof value === 'string' && value !== '' ? value : undefined;
  } catch {
    return undefined;
  }
}
