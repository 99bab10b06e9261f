import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ClientError, createClient, OutcomeUnknownError } from '../../src/client/index.js';
import { type ClientTestServer, startClientTestServer } from '../support/client-server.js';
import { readSpec, SPECS } from '../support/client-specs.js';

/*
 * OpenAPI discovery end to end: a client given a real public document finds each operation's
 * key carrier and puts the key there, and a server reading the key from that place (idemkit's
 * `keyFrom`) runs a retried operation once. The server mirrors each API's paths on 127.0.0.1.
 */

let server: ClientTestServer;
before(async () => {
  server = await startClientTestServer({
    routes: [
      // Google AIP-155: requestId in the query (create calls) or the body (custom methods).
      { prefix: '/v1/', keyFrom: { queryParam: 'requestId', bodyField: 'requestId' } },
      // AWS: clientToken in the JSON body.
      { prefix: '/workspaces', keyFrom: { bodyField: 'clientToken' } },
    ],
  });
  // Every first attempt executes and its answer is lost on the way back.
  server.script(({ n }) => (n === 1 ? 'drop' : 'ok'));
});
after(() => server.close());

const common = {
  headers: { authorization: 'Bearer merchant-1' },
  timeoutMs: 500,
  retries: { limit: 3, baseDelayMs: 5 },
};
const only = (operation: string) => server.seen.filter((s) => s.operation === operation);

describe('createClient({ openapi }) against a server that reads the key where the document says', () => {
  it('Adyen Checkout: the Idempotency-Key header, under the document server’s /v71', async () => {
    const client = createClient({
      ...common,
      baseUrl: `${server.url}/v71`,
      openapi: readSpec(SPECS.adyenCheckout),
    });

    const response = await client.fetch('/payments', {
      method: 'POST',
      json: { operation: 'adyen-1', amount: { value: 1000, currency: 'EUR' } },
    });

    assert.deepEqual([response.status, response.idemkit.attempts, response.idemkit.replayed], [201, 2, true]);
    assert.deepEqual(response.idemkit.policy, {
      kind: 'keyed',
      carrier: { in: 'header', name: 'Idempotency-Key' },
    });
    assert.deepEqual(
      only('adyen-1').map((s) => s.headers['idempotency-key']),
      [response.idemkit.key, response.idemkit.key],
    );
    assert.equal(server.ledger.get('adyen-1'), 1);
  });

  it('Google Network Connectivity: requestId in the query of a create call', async () => {
    const client = createClient({
      ...common,
      baseUrl: server.url,
      openapi: readSpec(SPECS.googleNetworkConnectivity),
    });

    const response = await client.fetch('/v1/projects/demo/locations/global/hubs?hubId=hub-1', {
      method: 'POST',
      json: { operation: 'google-1', description: 'a hub' },
    });

    assert.deepEqual([response.status, response.idemkit.replayed], [201, true]);
    const key = response.idemkit.key as string;
    assert.deepEqual(
      only('google-1').map((s) => s.url),
      [0, 1].map(() => `/v1/projects/demo/locations/global/hubs?hubId=hub-1&requestId=${key}`),
    );
    assert.ok(only('google-1').every((s) => s.headers['idempotency-key'] === undefined));
    assert.equal(server.ledger.get('google-1'), 1);
  });

  it('Google Network Connectivity: requestId in the body of a custom method', async () => {
    const client = createClient({
      ...common,
      baseUrl: server.url,
      openapi: readSpec(SPECS.googleNetworkConnectivity),
    });

    const response = await client.fetch('/v1/projects/demo/locations/global/hubs/hub-1:acceptSpoke', {
      method: 'POST',
      json: { operation: 'google-2', spokeUri: 'projects/demo/locations/us/spokes/s1' },
    });

    assert.deepEqual([response.status, response.idemkit.replayed], [201, true]);
    const body = JSON.parse(only('google-2')[1]?.body ?? '{}');
    assert.equal(body.requestId, response.idemkit.key);
    assert.equal(new Set(only('google-2').map((s) => s.body)).size, 1);
    assert.equal(server.ledger.get('google-2'), 1);
  });

  it('AWS Prometheus: clientToken in the JSON body, the caller’s own token kept as the key', async () => {
    const client = createClient({ ...common, baseUrl: server.url, openapi: readSpec(SPECS.awsPrometheus) });

    const response = await client.fetch('/workspaces', {
      method: 'POST',
      json: { operation: 'aws-1', alias: 'prod', clientToken: 'tok-4711' },
    });

    assert.deepEqual(
      [response.status, response.idemkit.replayed, response.idemkit.key],
      [201, true, 'tok-4711'],
    );
    assert.equal(server.ledger.get('aws-1'), 1);
  });

  it('an operation the document gives no key (Adyen’s PATCH) is unsafe: one attempt, then OutcomeUnknownError', async () => {
    const client = createClient({
      ...common,
      baseUrl: `${server.url}/v71`,
      openapi: readSpec(SPECS.adyenCheckout),
    });

    const attempt = client.fetch('/paymentLinks/PL61C53A8B97E6915A', {
      method: 'PATCH',
      json: { operation: 'adyen-patch-1', status: 'expired' },
    });

    await assert.rejects(
      attempt,
      (error: ClientError) => error instanceof OutcomeUnknownError && error.attempts === 1,
    );
    assert.equal(server.ledger.get('adyen-patch-1'), 1);
  });
});
