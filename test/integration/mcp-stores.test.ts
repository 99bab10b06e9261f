import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { z } from 'zod';
import { createIdempotency, type IdempotencyStore } from '../../src/index.js';
import { idempotentTools } from '../../src/mcp/index.js';
import { callWithRetries, idemkitError, inMemoryPair } from '../support/mcp-harness.js';
import { OPERATION_SECRET, operationStores } from '../support/operation-stores.js';

const quiet = { onWarning() {} };

/** create_payment records each effect in `ledger`; its first `failures` runs throw before any effect. */
async function paymentsOn(store: IdempotencyStore, ledger: number[], failures = 0) {
  let failuresLeft = failures;
  return inMemoryPair((server) => {
    const tools = idempotentTools(server, {
      idem: createIdempotency({ store, secret: OPERATION_SECRET, ...quiet }),
      principal: () => 'agent-a',
    });
    tools.register(
      'create_payment',
      { inputSchema: { amount: z.number().int() } },
      async ({ amount }: { amount: number }) => {
        if (failuresLeft > 0) {
          failuresLeft--;
          throw new Error('the payment provider did not answer (nothing charged)');
        }
        ledger.push(amount);
        return { content: [{ type: 'text', text: `charged ${amount}` }], structuredContent: { amount } };
      },
    );
  });
}

// The same tool calls on every store the engine has: the wrapper adds no store logic of its own.
for (const { name, make } of operationStores('mcp')) {
  describe(`idemkit/mcp on the ${name} store`, () => {
    it('an agent whose answers are lost retries: each payment once, each retry the stored result', async () => {
      const ledger: number[] = [];
      const pair = await paymentsOn(await make(), ledger);
      after(() => pair.close());
      for (let action = 0; action < 3; action++) {
        pair.dropNextResult();
        pair.dropNextResult();
        const result = await callWithRetries(
          pair.client,
          'create_payment',
          { amount: 10 + action, idempotencyKey: `${name}-pay-${action}` },
          4,
          500,
        );
        assert.deepEqual(result.structuredContent, { amount: 10 + action });
        assert.equal(result._meta?.['io.idemkit/replayed'], true, 'the answer that arrived is a replay');
      }
      assert.deepEqual(ledger, [10, 11, 12]);
    });

    it('the same key with other arguments is refused; a failed run is released and runs again', async () => {
      const ledger: number[] = [];
      const pair = await paymentsOn(await make(), ledger, 1);
      after(() => pair.close());
      const failed = await pair.client.callTool({
        name: 'create_payment',
        arguments: { amount: 5, idempotencyKey: `${name}-k` },
      });
      assert.equal(failed.isError, true);
      assert.equal(idemkitError(failed), undefined);
      const ran = await pair.client.callTool({
        name: 'create_payment',
        arguments: { amount: 5, idempotencyKey: `${name}-k` },
      });
      assert.equal(ran._meta?.['io.idemkit/replayed'], false);
      const reused = await pair.client.callTool({
        name: 'create_payment',
        arguments: { amount: 6, idempotencyKey: `${name}-k` },
      });
      assert.equal(idemkitError(reused)?.error, 'idempotency_key_reused');
      assert.deepEqual(ledger, [5]);
    });
  });
}
