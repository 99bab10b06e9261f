import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validate } from '@readme/openapi-parser';
import { discoverOperations } from '../../src/client/index.js';
import { PROBLEMS } from '../../src/core/errors.js';
import { IdempotencyConfigError } from '../../src/index.js';
import { addIdempotency, idempotencyDocument, problemsByStatus } from '../../src/openapi/index.js';
import { readSpec, SPECS } from '../support/client-specs.js';

/** A small API of our own: one POST, one PATCH, one GET, an inline body with a request_id-less schema. */
function shopApi() {
  return {
    openapi: '3.1.0',
    info: { title: 'shop', version: '1' },
    paths: {
      '/charges': {
        post: {
          operationId: 'createCharge',
          requestBody: {
            content: {
              'application/json': { schema: { type: 'object', properties: { amount: { type: 'integer' } } } },
            },
          },
          responses: {
            '201': { description: 'created', headers: { Location: { schema: { type: 'string' } } } },
          },
        },
        get: { operationId: 'listCharges', responses: { '200': { description: 'ok' } } },
      },
      '/orders/{id}': {
        patch: {
          operationId: 'updateOrder',
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { '200': { description: 'ok' }, '409': { description: 'our own 409' } },
        },
      },
      '/refunds': { post: { operationId: 'refund', responses: { '201': { description: 'created' } } } },
    },
  };
}

async function assertValid(document: object) {
  const result = await validate(structuredClone(document) as never);
  assert.equal(result.valid, true, JSON.stringify(result.valid ? [] : result.errors, null, 2));
}

describe('idemkit/openapi', () => {
  it('emits a valid OpenAPI 3.1 document with the key parameter, the replay header and every problem status', async () => {
    const document = idempotencyDocument();
    await assertValid(document);
    const components = document.components as Record<string, Record<string, unknown>>;
    const statuses = Object.keys(components.responses ?? {}).map((n) =>
      Number(n.replace('IdempotencyProblem', '')),
    );
    assert.deepEqual(statuses, [400, 401, 409, 413, 422, 429, 503]);
    const r503 = components.responses?.IdempotencyProblem503 as { headers?: Record<string, unknown> };
    assert.ok(r503.headers?.['Retry-After'], '503 carries Retry-After');
    const r422 = components.responses?.IdempotencyProblem422 as { headers?: Record<string, unknown> };
    assert.equal(r422.headers, undefined, 'key-reused is not worth retrying: no Retry-After');
  });

  it('lists exactly the problems of the engine table (a new problem type appears by itself)', () => {
    const listed = [...problemsByStatus({ gateway: true }).values()].flat().sort();
    const all = Object.keys(PROBLEMS)
      .filter((code) => code !== 'invalid-options' && code !== 'handler-error')
      .sort();
    assert.deepEqual(listed, all);
    assert.ok(![...problemsByStatus({ required: false }).values()].flat().includes('missing-key'));
  });

  it('adds the key to the covered operations of a user document, keeps what it defines, and validates', async () => {
    const input = shopApi();
    const before = JSON.stringify(input);
    const output = addIdempotency(input, { operations: ['POST /charges', 'PATCH /orders/*'] });
    assert.equal(JSON.stringify(input), before, 'the input is not changed');
    await assertValid(output);
    const paths = output.paths as Record<
      string,
      Record<string, { parameters?: unknown[]; responses: Record<string, unknown> }>
    >;
    const charge = paths['/charges']?.post;
    assert.deepEqual(charge?.parameters, [{ $ref: '#/components/parameters/IdempotencyKey' }]);
    assert.deepEqual(charge?.responses['422'], { $ref: '#/components/responses/IdempotencyProblem422' });
    const created = charge?.responses['201'] as { headers: Record<string, unknown> };
    assert.ok(created.headers.Location && created.headers['Idempotent-Replayed']);
    assert.deepEqual(paths['/orders/{id}']?.patch?.responses['409'], { description: 'our own 409' }, 'kept');
    assert.equal(paths['/refunds']?.post?.parameters, undefined, 'not covered');
    assert.equal(paths['/charges']?.get?.parameters, undefined);
  });

  it('round trip: idemkit/client discovery classifies exactly the covered operations as keyed', async () => {
    const output = addIdempotency(shopApi(), { operations: ['POST /charges'] });
    const { operations } = await discoverOperations(output);
    const policyOf = (method: string, path: string) =>
      operations.find((o) => o.method === method && o.path === path)?.policy;
    assert.deepEqual(policyOf('POST', '/charges'), {
      kind: 'keyed',
      carrier: { in: 'header', name: 'Idempotency-Key' },
    });
    assert.equal(policyOf('POST', '/refunds')?.kind, 'unsafe');
    assert.equal(policyOf('GET', '/charges')?.kind, 'idempotent');
  });

  it('carries an AIP-155 body field and an EC2 query parameter when configured', async () => {
    const output = addIdempotency(shopApi(), {
      operations: ['POST /charges'],
      keyBodyField: 'request_id',
      keyQueryParam: 'ClientToken',
    });
    await assertValid(output);
    const post = (output.paths as Record<string, Record<string, Record<string, unknown>>>)['/charges']
      ?.post as {
      parameters: unknown[];
      requestBody: { content: Record<string, { schema: { properties: Record<string, unknown> } }> };
    };
    assert.equal(post.parameters.length, 2);
    assert.ok(post.requestBody.content['application/json']?.schema.properties.request_id);
  });

  it('works on real public documents (OpenAPI 3.0): they stay valid', async () => {
    for (const spec of [SPECS.awsPrometheus, SPECS.googleNetworkConnectivity]) {
      const output = addIdempotency(readSpec(spec));
      await assertValid(output);
    }
  });

  it('refuses what is not OpenAPI 3, a clashing component and a malformed route', () => {
    assert.throws(() => addIdempotency({ swagger: '2.0', paths: {} }), IdempotencyConfigError);
    const clash = {
      ...shopApi(),
      components: { parameters: { IdempotencyKey: { name: 'x', in: 'query' } } },
    };
    assert.throws(() => addIdempotency(clash), /components.parameters.IdempotencyKey already exists/);
    assert.throws(() => addIdempotency(shopApi(), { operations: ['charges'] }), /is not "METHOD \/path"/);
  });

  it('the validator catches a broken component (negative control)', async () => {
    const broken = idempotencyDocument() as {
      components: { parameters: Record<string, Record<string, unknown>> };
    };
    delete broken.components.parameters.IdempotencyKey?.in;
    const result = await validate(broken as never);
    assert.equal(result.valid, false);
  });
});
