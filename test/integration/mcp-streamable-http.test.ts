import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { createPaymentsMcp } from '../../examples/mcp/server.js';
import { idemkitError } from '../support/mcp-harness.js';

/** A fresh agent session: a new client and a new MCP session, as after a reconnect. */
async function connect(url: URL, agent: string): Promise<Client> {
  const client = new Client({ name: agent, version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(url, {
      requestInit: { headers: { authorization: `Bearer ${agent}` } },
    }),
  );
  return client;
}

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
