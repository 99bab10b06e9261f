import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import type pg from 'pg';
import { withIdempotency } from '../../src/adapters/fetch.js';
import { createInstrumentedIdempotency } from '../../src/otel/index.js';
import { migrate, type PostgresTransactionClient, postgresStore } from '../../src/stores/postgres.js';
import { serveFetch } from '../../src/testing/serve-fetch.js';
import { postgresPool, randomTable } from '../support/postgres-service.js';

/*
 * idemkit/otel on a transactional PostgreSQL engine: the transaction's begin, commit and
 * rollback are store spans under the request, like the claim.
 */

const spans = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
let pool: pg.Pool;
const table = randomTable('otel');
const ledger = randomTable('otel_ledger');

before(async () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  pool = await postgresPool();
  await migrate({ pool, table });
  await pool.query(`CREATE TABLE "${ledger}" (charge text NOT NULL)`);
});
after(async () => {
  context.disable();
  await provider.shutdown();
  await pool?.query(`DROP TABLE IF EXISTS "${table}"`);
  await pool?.query(`DROP TABLE IF EXISTS "${ledger}"`);
  await pool?.end();
});

const childNames = (parent: ReadableSpan) =>
  spans
    .getFinishedSpans()
    .filter((s) => s.parentSpanContext?.spanId === parent.spanContext().spanId)
    .map((s) => s.name);

describe('idemkit/otel with a transactional PostgreSQL store', () => {
  it('claim, begin and commit (or rollback and release) are children of the request span', async () => {
    spans.reset();
    const idem = createInstrumentedIdempotency(
      {
        store: postgresStore({ pool, table, onWarning() {} }),
        secret: 'otel-postgres-secret-0123456789abcdef',
        transactional: true,
        sweepIntervalMs: 0,
        onWarning() {},
      },
      { tracer: provider.getTracer('test') },
    );
    after(() => idem.close());
    const server = await serveFetch(
      withIdempotency(async (request, ctx) => {
        const charge = request.headers.get('idempotency-key') ?? '';
        assert.ok(ctx, 'a keyed request runs under a claim');
        const client = ctx.transaction as PostgresTransactionClient;
        await client.query(`INSERT INTO "${ledger}" VALUES ($1)`, [charge]);
        if (charge.startsWith('fail')) throw new Error('card declined after the write');
        return Response.json({ charge }, { status: 201 });
      }, idem),
    );
    after(() => server.close());
    const post = (key: string) =>
      fetch(`${server.url}/charges`, {
        method: 'POST',
        headers: { 'idempotency-key': key, authorization: 'Bearer pg' },
        body: '{}',
      });

    assert.equal((await post('ok-1')).status, 201);
    assert.equal((await post('fail-1')).status, 500);
    const [stored, failed] = spans.getFinishedSpans().filter((s) => s.name === 'idemkit.request');
    assert.ok(stored && failed);
    assert.equal(stored.attributes['idemkit.disposition'], 'store');
    assert.deepEqual(childNames(stored), [
      'idemkit.store claim',
      'idemkit.store begin',
      'idemkit.store commit',
    ]);
    assert.equal(failed.attributes['idemkit.disposition'], 'release');
    assert.deepEqual(childNames(failed), [
      'idemkit.store claim',
      'idemkit.store begin',
      'idemkit.store rollback',
      'idemkit.store release',
    ]);
    const commit = spans.getFinishedSpans().find((s) => s.name === 'idemkit.store commit');
    assert.equal(commit?.attributes['idemkit.store.name'], 'postgres');
    assert.equal(commit?.attributes['idemkit.key.hash'], stored.attributes['idemkit.key.hash']);
    const rows = await pool.query(`SELECT charge FROM "${ledger}" ORDER BY charge`);
    assert.deepEqual(
      rows.rows.map((r) => r.charge),
      ['ok-1'],
      'the instrumented transaction still commits and rolls back',
    );
  });
});
