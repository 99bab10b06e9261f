import { timingSafeEqual } from 'node:crypto';
import type { HeaderInput } from '../core/request.js';
import { WEBHOOK_SCHEMES, type WebhookSchemeName } from './webhook-schemes.js';

export type { WebhookSchemeName } from './webhook-schemes.js';

export interface VerifyWebhookOptions {
  /** Who signs: `standard-webhooks`, `stripe`, `github` or `shopify`. */
  scheme: WebhookSchemeName;
  /** The signing secret, or several while one is rotated out (any of them may match). */
  secret: string | readonly string[];
  /** The request headers: a fetch `Headers` or Node's header record. */
  headers: HeaderInput;
  /** The raw body, exactly as received: a re-serialised JSON body no longer matches. */
  body: Uint8Array | string;
  /**
   * How far a signed timestamp may be from now, in seconds (Standard Webhooks and Stripe; GitHub
   * and Shopify sign none, so the de-duplication by id is their replay protection). @default 300
   */
  toleranceSeconds?: number;
  /** The source name handed to `once()`. @default the scheme's name */
  source?: string;
  /** Epoch milliseconds; for tests. @default Date.now */
  now?: () => number;
}

/** A verified delivery: pass it straight to `dedup.once(verified, fn)`. */
export interface VerifiedWebhook {
  source: string;
  /** The sender's event id, from where this sender keeps it. */
  id: string;
  /** The signed timestamp (seconds), for schemes that sign one. */
  timestamp?: number;
  /** The body as text (UTF-8): parse it only now that it is known to be genuine. */
  text: string;
}

export type WebhookFailure = 'missing-signature' | 'bad-signature' | 'stale-timestamp' | 'missing-id';

/** The request is not a genuine, fresh delivery: answer 400/401 and write nothing. */
export class WebhookVerificationError extends Error {
  override readonly name = 'WebhookVerificationError';
  readonly reason: WebhookFailure;
  /** What to answer the sender. */
  readonly status = 401;

  constructor(reason: WebhookFailure, message: string) {
    super(message);
    this.reason = reason;
  }
}

const DEFAULT_TOLERANCE_SECONDS = 300;

/**
 * Checks a webhook's signature on the raw body, in constant time, and its signed timestamp,
 * before anything is recorded: a forged or replayed-stale request throws
 * `WebhookVerificationError` and never reaches `once()`, so it can neither run the handler nor
 * take the id of a genuine event.
 */
export function verifyWebhook(options: VerifyWebhookOptions): VerifiedWebhook {
  const scheme = WEBHOOK_SCHEMES[options.scheme];
  if (!scheme) throw new TypeError(`verifyWebhook: unknown scheme ${JSON.stringify(options.scheme)}`);
  const secrets = typeof options.secret === 'string' ? [options.secret] : [...options.secret];
  if (secrets.length === 0 || secrets.some((s) => typeof s !== 'string' || s === '')) {
    throw new TypeError('verifyWebhook: secret must be a non-empty string (or a list of them)');
  }
  const body =
    typeof options.body === 'string' ? Buffer.from(options.body, 'utf8') : Buffer.from(options.body);
  const parts = scheme.parse(options.headers, body);
  if (!parts || parts.candidates.length === 0) {
    throw new WebhookVerificationError('missing-signature', `no ${scheme.name} signature on the request`);
  }
  let genuine = false;
  // Every secret against every candidate, without stopping early: the time taken says nothing.
  for (const secret of secrets) {
    const expected = parts.expected(secret);
    for (const candidate of parts.candidates) {
      if (candidate.length === expected.length && timingSafeEqual(candidate, expected)) genuine = true;
    }
  }
  if (!genuine)
    throw new WebhookVerificationError('bad-signature', `the ${scheme.name} signature does not match`);
  if (parts.timestamp !== undefined) {
    const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
    const nowSeconds = Math.floor((options.now ?? Date.now)() / 1_000);
    if (Math.abs(nowSeconds - parts.timestamp) > tolerance) {
      throw new WebhookVerificationError(
        'stale-timestamp',
        `the signed timestamp is more than ${tolerance} s from now: a replay, or a clock off`,
      );
    }
  }
  const id = scheme.eventId(parts, body);
  if (!id)
    throw new WebhookVerificationError('missing-id', `the ${scheme.name} delivery carries no event id`);
  return {
    source: options.source ?? scheme.name,
    id,
    ...(parts.timestamp === undefined ? {} : { timestamp: parts.timestamp }),
    text: body.toString('utf8'),
  };
}
