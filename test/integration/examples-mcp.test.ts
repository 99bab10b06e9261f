import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startExample, stopExample } from '../support/example-process.js';

describe('examples/mcp: the server a reader runs', () => {
  it('starts, lists its keyed tools, charges once per key and replays the retry', async () => {
    const { url, child } = await startExample('examples/mcp/server.ts');
    after(() => stopExample(child));
    const client = new Client({ name: 'reader', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${url}/mcp`), {
        requestInit: { headers: { authorization: 'Bearer reader' } },
      }),
    );
    try {
      const { tools } = await client.listTools();
      const keyed = tools.filter((t) => t._meta?.['io.idemkit/idempotent']).map((t) => t.name);
      assert.deepEqual(keyed.sort(), ['create_payment', 'send_email']);

      const args = { amount: 1999, currency: 'eur', idempotencyKey: 'example-1' };
      const first = await client.callTool({ name: 'create_payment', arguments: args });
      const retry = await client.callTool({ name: 'create_payment', arguments: args });
      assert.deepEqual(retry.structuredContent, first.structuredContent);
      assert.equal(retry._meta?.['io.idemkit/replayed'], true);
      const listed = await client.callTool({ name: 'list_payments', arguments: {} });
      const payments = JSON.parse((listed.content as { text: string }[])[0]?.text ?? '[]') as unknown[];
      assert.equal(payments.length, 1);
    } finally {
      await client.close();
    }
  });
});
