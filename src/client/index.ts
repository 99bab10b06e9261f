export { fullJitterDelay, parseRetryAfter } from './backoff.js';
export type { BodyFactory } from './body.js';
export { createRetryBudget, type RetryBudget, type RetryBudgetOptions } from './budget.js';
export { createClient, type IdempotentClient, type ResumeResult } from './client.js';
export {
  ClientConfigError,
  ClientError,
  ClientErrorCode,
  isClientError,
  KeyReusedError,
  OutcomeUnknownError,
} from './errors.js';
export type { JournalEntry, JournalOptions } from './journal.js';
export {
  DEFAULT_KEY_NAMES,
  type DiscoveredOperation,
  discoverOperations,
  type OpenApiDiscovery,
  type OpenApiOptions,
  type OpenApiSource,
} from './openapi.js';
export { CLIENT_DEFAULTS, type ClientOptions, type RetryOptions } from './options.js';
export type { KeyCarrier, PolicyInput, RetryPolicy } from './policy.js';
export type { ClientInit } from './prepare.js';
export type { ClientResponse, OperationInfo, StopReason } from './response.js';
export type { RouteRule } from './routes.js';
export type { RetryEvent } from './run.js';
