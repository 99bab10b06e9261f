import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ClientConfigError,
  createClient,
  type DiscoveredOperation,
  discoverOperations,
} from '../../src/client/index.js';
import { readSpec, SPECS } from '../support/client-specs.js';

/*
 * Discovery on real public documents (see test/support/client-specs.ts), not on a toy: each
 * uses a different key carrier, and they are read through the optional parser with their own
 * $refs (Adyen's header is a components/parameters reference).
 */

const find = (ops: readonly DiscoveredOperation[], method: string, path: string) =>
  ops.find((op) => op.method === method && op.path === path);

describe('OpenAPI discovery on real documents', () => {
  it('Adyen Checkout: every POST keyed by its Idempotency-Key header, the PATCH unsafe, reads idempotent', async () => {
    const { operations, basePaths } = await discoverOperations(readSpec(SPECS.adyenCheckout));

    const posts = operations.filter((op) => op.method === 'POST');
    assert.ok(posts.length >= 20, `${posts.length} POST operations`);
    for (const op of posts) {
      assert.deepEqual(
        op.policy,
        { kind: 'keyed', carrier: { in: 'header', name: 'Idempotency-Key' } },
        op.path,
      );
    }
    assert.equal(find(operations, 'PATCH', '/paymentLinks/{linkId}')?.policy.kind, 'unsafe');
    assert.equal(find(operations, 'GET', '/sessions/{sessionId}')?.policy.kind, 'idempotent');
    assert.equal(
      find(operations, 'DELETE', '/storedPaymentMethods/{storedPaymentMethodId}')?.policy.kind,
      'idempotent',
    );
    assert.equal(find(operations, 'POST', '/payments')?.operationId, 'post-payments');
    assert.deepEqual(basePaths, ['/v71']);
  });

  it('Google Network Connectivity: AIP-155 requestId as a query parameter, or as a body property', async () => {
    const { operations } = await discoverOperations(readSpec(SPECS.googleNetworkConnectivity));

    const query = { kind: 'keyed', carrier: { in: 'query', name: 'requestId' } };
    assert.deepEqual(find(operations, 'POST', '/v1/{parent}/hubs')?.policy, query);
    assert.deepEqual(find(operations, 'PATCH', '/v1/{name}')?.policy, query);
    assert.deepEqual(find(operations, 'DELETE', '/v1/{name}')?.policy, query);
    assert.deepEqual(find(operations, 'POST', '/v1/{name}:acceptSpoke')?.policy, {
      kind: 'keyed',
      carrier: { in: 'body', name: 'requestId' },
    });
    assert.equal(find(operations, 'GET', '/v1/{name}')?.policy.kind, 'idempotent');
    const unkeyedPosts = operations.filter((op) => op.method === 'POST' && op.policy.kind === 'unsafe');
    assert.ok(unkeyedPosts.length > 0, 'some POSTs take no request id (e.g. setIamPolicy) and are unsafe');
  });

  it('AWS Prometheus: EC2-style clientToken body properties, spelled as the document spells them', async () => {
    const { operations } = await discoverOperations(readSpec(SPECS.awsPrometheus));

    assert.deepEqual(find(operations, 'POST', '/workspaces')?.policy, {
      kind: 'keyed',
      carrier: { in: 'body', name: 'clientToken' },
    });
  });

  it('keyNames narrows what counts as a carrier', async () => {
    const { operations } = await discoverOperations(readSpec(SPECS.googleNetworkConnectivity), [
      'Idempotency-Key',
    ]);

    assert.equal(find(operations, 'POST', '/v1/{parent}/hubs')?.policy.kind, 'unsafe');
  });

  it('a document read from its path gives the same operations as the object', async () => {
    const fromPath = await discoverOperations(SPECS.awsPrometheus);
    const fromObject = await discoverOperations(readSpec(SPECS.awsPrometheus));

    assert.deepEqual(fromPath, fromObject);
  });

  it('the caller’s document object is left as it was (the parser works on a copy)', async () => {
    const document = readSpec(SPECS.adyenCheckout);
    const before = JSON.stringify(document);

    await discoverOperations(document);

    assert.equal(JSON.stringify(document), before);
  });

  it('a document without paths is a config error, reported by the call that needs it', async () => {
    const client = createClient({ baseUrl: 'http://127.0.0.1:1', openapi: { openapi: '3.0.0', info: {} } });

    await assert.rejects(client.fetch('/x'), ClientConfigError);
    await assert.rejects(discoverOperations({ openapi: '3.0.0' }), /no paths/);
  });
});

describe('createClient({ openapi }) applies what it discovered', () => {
  it('finds operations relative to baseUrl, or under the document server’s path, including Google’s multi-segment names', async () => {
    const adyen = createClient({ baseUrl: 'http://127.0.0.1:1/v71', openapi: readSpec(SPECS.adyenCheckout) });
    const adyenAtRoot = createClient({
      baseUrl: 'http://127.0.0.1:1',
      openapi: { document: SPECS.adyenCheckout },
    });
    const google = createClient({
      baseUrl: 'http://127.0.0.1:1',
      openapi: readSpec(SPECS.googleNetworkConnectivity),
    });

    assert.equal((await adyen.policyFor('POST', '/payments/psp_1/refunds')).kind, 'keyed');
    assert.equal((await adyen.policyFor('PATCH', '/paymentLinks/PL1')).kind, 'unsafe');
    assert.equal((await adyenAtRoot.policyFor('PATCH', '/v71/paymentLinks/PL1')).kind, 'unsafe');
    assert.deepEqual(await google.policyFor('POST', '/v1/projects/p/locations/global/hubs'), {
      kind: 'keyed',
      carrier: { in: 'query', name: 'requestId' },
    });
    assert.deepEqual(
      await google.policyFor('POST', '/v1/projects/p/locations/global/spokes/s1:acceptSpoke'),
      {
        kind: 'keyed',
        carrier: { in: 'body', name: 'requestId' },
      },
    );
    // Not in the document: the method default.
    assert.equal((await google.policyFor('POST', '/elsewhere')).kind, 'keyed');
    assert.equal((await adyen.operations()).length > 20, true);
  });

  it('a route rule overrides the document', async () => {
    const client = createClient({
      baseUrl: 'http://127.0.0.1:1/v71',
      openapi: readSpec(SPECS.adyenCheckout),
      routes: [{ method: 'PATCH', path: '/paymentLinks/{linkId}', policy: 'idempotent' }],
    });

    assert.equal((await client.policyFor('PATCH', '/paymentLinks/PL1')).kind, 'idempotent');
  });
});
