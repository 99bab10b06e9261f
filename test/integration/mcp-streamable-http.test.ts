import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type pg from 'pg';
import { z } from 'zod';
import { createPaymentsMcp } from '../../examples/mcp/server.js';
import { createIdempotency, type IdempotencyStore, memoryStore } from '../../src/index.js';
import { idempotentTools } from '../../src/mcp/index.js';
import { migrate, postgresStore } from '../../src/stores/postgres.js';
import {
  connectAgent as connect,
  idemkitError,
  reconnectingAgentCall,
  serveMcpOverHttp,
} from '../support/mcp-harness.js';
import { dropTable, postgresPool, randomTable } from '../support/postgres-service.js';

async function start(processingMs = 0) {
  const app = createPaymentsMcp({ processingMs });
  await new Promise<void>((resolve) => app.http.listen(0, '127.0.0.1', resolve));
  const url = new URL(`http://127.0.0.1:${(app.http.address() as AddressInfo).port}/mcp`);
  after(async () => {
    // Sessions keep their SSE streams open: end them, then the listener.
    for (const transport of app.sessions.values()) await transport.close();
    app.http.closeAllConnections();
    await new Promise<void>((resolve) => app.http.close(() => resolve()));
  });
  return { app, url };
}

describe('idemkit/mcp over Streamable HTTP (the examples/mcp server, real sockets)', () => {
  it('an agent whose answer never arrives retries in a new session with the same key: one payment', async () => {
    const { app, url } = await start(400);
    const first = await connect(url, 'agent-1');
    // The agent gives up after 150 ms (its answer is lost to it), while the server goes on charging.
    await assert.rejects(
      first.callTool(
        { name: 'create_payment', arguments: { amount: 4200, currency: 'eur', idempotencyKey: 'order-17' } },
        undefined,
        { timeout: 150 },
      ),
    );
    await first.close();

    // A reconnect is a new session: the key, not the session, finds the first call.
    const second = await connect(url, 'agent-1');
    after(() => second.close());
    let result = await second.callTool({
      name: 'create_payment',
      arguments: { amount: 4200, currency: 'eur', idempotencyKey: 'order-17' },
    });
    for (
      let attempt = 0;
      idemkitError(result)?.error === 'idempotency_in_flight' && attempt < 20;
      attempt++
    ) {
      await new Promise((r) => setTimeout(r, 100));
      result = await second.callTool({
        name: 'create_payment',
        arguments: { amount: 4200, currency: 'eur', idempotencyKey: 'order-17' },
      });
    }
    assert.equal(result.isError, undefined);
    assert.equal(app.payments.length, 1, 'charged once');
    assert.deepEqual(result.structuredContent, app.payments[0]);
    assert.equal(result._meta?.['io.idemkit/replayed'], true);
  });

  it('the MCP auth info is the principal: another agent with the same key is another payment', async () => {
    const { app, url } = await start();
    const one = await connect(url, 'agent-1');
    const two = await connect(url, 'agent-2');
    after(() => one.close());
    after(() => two.close());
    const args = { amount: 10, currency: 'usd', idempotencyKey: 'same-key' };
    const a = await one.callTool({ name: 'create_payment', arguments: args });
    const b = await two.callTool({ name: 'create_payment', arguments: args });
    assert.equal(app.payments.length, 2);
    assert.notDeepEqual(a.structuredContent, b.structuredContent);
    assert.equal(b._meta?.['io.idemkit/replayed'], false);
  });

  it('a tool call without a key is refused with idempotency_key_required over HTTP too', async () => {
    const { app, url } = await start();
    const client = await connect(url, 'agent-1');
    after(() => client.close());
    const result = await client.callTool({
      name: 'send_email',
      arguments: { to: 'a@example.com', subject: 'hi' },
    });
    assert.equal(idemkitError(result)?.error, 'idempotency_key_required');
    assert.equal(app.emails.length, 0);
  });
});

const SECRET = 'mcp-http-suite-secret-0123456789';
const slow = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** create_payment, 250 ms (`processingMs`) per charge, each charge in `ledger`; keyed through idemkit unless `plain`. */
function payments(
  ledger: string[],
  options: { store?: IdempotencyStore; plain?: boolean; processingMs?: number } = {},
) {
  const idem = createIdempotency({ store: options.store ?? memoryStore(), secret: SECRET });
  return (server: McpServer) => {
    const charge = async (amount: number, by: string) => {
      await slow(options.processingMs ?? 250);
      ledger.push(`${by}:${amount}`);
      return {
        content: [{ type: 'text' as const, text: `charged ${amount}` }],
        structuredContent: { amount },
      };
    };
    if (options.plain) {
      server.registerTool(
        'create_payment',
        { inputSchema: { amount: z.number(), idempotencyKey: z.string() } },
        async ({ amount }, extra) => charge(amount, extra.authInfo?.clientId ?? '?'),
      );
      return;
    }
    idempotentTools(server, { idem }).register(
      'create_payment',
      { inputSchema: { amount: z.number() } },
      async ({ amount }: { amount: number }, extra) => charge(amount, extra.authInfo?.clientId ?? '?'),
    );
  };
}

describe('idemkit/mcp over Streamable HTTP: agents that give up and reconnect', () => {
  it('each payment once with idemkit; the same agent against the unwrapped tool pays twice (negative control)', async () => {
    const keyedLedger: string[] = [];
    const plainLedger: string[] = [];
    const keyed = await serveMcpOverHttp(payments(keyedLedger));
    after(() => keyed.close());
    const plain = await serveMcpOverHttp(payments(plainLedger, { plain: true }));
    after(() => plain.close());
    for (let action = 0; action < 2; action++) {
      const args = { amount: 100 + action, idempotencyKey: `order-${action}` };
      // The first attempt gives up after 100 ms; the server goes on and charges anyway.
      const a = await reconnectingAgentCall([keyed.url], 'agent-1', 'create_payment', args, 100);
      const b = await reconnectingAgentCall([plain.url], 'agent-1', 'create_payment', args, 100);
      assert.deepEqual(a.structuredContent, { amount: 100 + action });
      assert.deepEqual(b.structuredContent, { amount: 100 + action });
    }
    await slow(300); // the plain server's abandoned runs finish
    assert.deepEqual(keyedLedger, ['agent-1:100', 'agent-1:101']);
    assert.ok(
      plainLedger.length > 2,
      `the unwrapped tool charged ${plainLedger.length} times for 2 payments`,
    );
  });

  describe('two server instances on one PostgreSQL table', () => {
    let pool: pg.Pool | undefined;
    const table = randomTable('mcp_http');
    const stores: IdempotencyStore[] = [];
    before(async () => {
      pool = await postgresPool();
      await migrate({ pool, table });
    });
    after(async () => {
      for (const store of stores) await store.close();
      if (pool) {
        await dropTable(pool, table);
        await pool.end();
      }
    });
    /** Two instances, each with its own pool and engine, as two processes behind a load balancer. */
    async function twoInstances(ledger: string[], processingMs?: number) {
      const urls: URL[] = [];
      for (let i = 0; i < 2; i++) {
        const ownPool = await postgresPool({ max: 4 });
        after(() => ownPool.end());
        const store = postgresStore({ pool: ownPool, table });
        stores.push(store);
        const instance = await serveMcpOverHttp(
          payments(ledger, { store, ...(processingMs ? { processingMs } : {}) }),
        );
        after(() => instance.close());
        urls.push(instance.url);
      }
      return urls;
    }

    it('the retry lands on the other instance in a new session: one payment, the stored result', async () => {
      const ledger: string[] = [];
      const urls = await twoInstances(ledger);
      const args = { amount: 4200, idempotencyKey: 'pg-order-1' };
      const result = await reconnectingAgentCall(urls, 'agent-1', 'create_payment', args, 100);
      assert.deepEqual(ledger, ['agent-1:4200']);
      assert.deepEqual(result.structuredContent, { amount: 4200 });
      assert.equal(result._meta?.['io.idemkit/replayed'], true);
    });

    it('duplicates sent to both instances at once: one runs, the other is told in flight', async () => {
      const ledger: string[] = [];
      // A second long enough that the duplicate arrives while the first still runs, even on a busy machine.
      const [a, b] = (await twoInstances(ledger, 1_000)) as [URL, URL];
      const one = await connect(a, 'agent-2');
      const two = await connect(b, 'agent-2');
      after(() => one.close());
      after(() => two.close());
      const args = { amount: 7, idempotencyKey: 'pg-dup-1' };
      const results = await Promise.all([
        one.callTool({ name: 'create_payment', arguments: args }),
        two.callTool({ name: 'create_payment', arguments: args }),
      ]);
      const codes = results.map((r) => idemkitError(r)?.error ?? 'ran').sort();
      assert.deepEqual(codes, ['idempotency_in_flight', 'ran']);
      assert.deepEqual(ledger, ['agent-2:7']);
      // Another agent with the same key is another payment (the principal is the auth info).
      await two.close();
      const other = await connect(b, 'agent-3');
      after(() => other.close());
      await other.callTool({ name: 'create_payment', arguments: args });
      assert.deepEqual(ledger, ['agent-2:7', 'agent-3:7']);
    });
  });
});
