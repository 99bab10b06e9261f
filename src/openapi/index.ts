/**
 * `idemkit/openapi`: say in an API's OpenAPI contract which operations take an idempotency key,
 * and what idemkit answers them with, so generated clients (and `idemkit/client`) know.
 */
export {
  type ComponentOptions,
  idempotencyComponents,
  type KeyCarrierOptions,
  problemsByStatus,
} from './components.js';
export { type AddIdempotencyOptions, addIdempotency, idempotencyDocument } from './document.js';
