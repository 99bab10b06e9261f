/**
 * `idemkit/consumer`: exactly-once handling of webhook and queue deliveries, on the engine's
 * operation call (`idem.run`), with webhook signature verification before anything is recorded.
 */

export { InFlightError, KeyReusedError, OutcomeUncertainError } from '../core/errors.js';
export {
  createDeduplicator,
  type Deduplicator,
  type DeduplicatorOptions,
  type Delivery,
  type OnceResult,
  RedeliverLaterError,
} from './deduplicator.js';
export {
  createPostgresInbox,
  type InboxContext,
  type PostgresInbox,
  type PostgresInboxOptions,
  type PostgresInboxPool,
} from './postgres-inbox.js';
export {
  receiveWebhook,
  type WebhookAnswer,
  type WebhookHandler,
  type WebhookProblemType,
  type WebhookReceiver,
  type WebhookReceiverOptions,
  type WebhookRequest,
} from './receive-webhook.js';
export {
  type VerifiedWebhook,
  type VerifyWebhookOptions,
  verifyWebhook,
  type WebhookFailure,
  type WebhookSchemeName,
  WebhookVerificationError,
} from './verify-webhook.js';
