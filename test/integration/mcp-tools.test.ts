import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import * as z3 from 'zod/v3';
import { createIdempotency, type IdempotencyStore, memoryStore } from '../../src/index.js';
import { idempotentTools, mcpAuthPrincipal } from '../../src/mcp/index.js';
import { sqliteStore } from '../../src/stores/sqlite.js';
import { callWithRetries, idemkitError, inMemoryPair } from '../support/mcp-harness.js';

const quiet = { onWarning() {} };
const asAgent = (principal: string) => () => principal;

/** A payments tool whose every effect lands in `ledger`; `gate` can hold it mid-flight. */
function paymentsServer(
  ledger: { amount: number; key: string }[],
  options: { principal?: () => string | undefined; allowAnonymous?: boolean; store?: IdempotencyStore } = {},
  gate?: Promise<void>,
) {
  return (server: McpServer) => {
    const idem = createIdempotency({ store: options.store ?? memoryStore(quiet), ...quiet });
    const tools = idempotentTools(server, {
      idem,
      principal: options.principal ?? asAgent('agent-a'),
      ...(options.allowAnonymous ? { allowAnonymous: true } : {}),
    });
    tools.register(
      'create_payment',
      { description: 'Charges a card', inputSchema: { amount: z.number().int().positive() } },
      // Arguments inferred from the schema: `amount` is a number here (typechecked).
      async ({ amount }, _extra, ctx) => {
        await gate;
        ledger.push({ amount, key: ctx.downstreamKey() });
        return {
          content: [{ type: 'text', text: `charged ${amount}` }],
          structuredContent: { charged: amount },
        };
      },
    );
    tools.register(
      'get_balance',
      { description: 'Reads the balance', annotations: { readOnlyHint: true } },
      async () => ({
        content: [{ type: 'text', text: `balance ${ledger.reduce((s, e) => s + e.amount, 0)}` }],
      }),
    );
  };
}

describe('idemkit/mcp over the in-memory transport', () => {
  it('a keyed call runs once; a retry with the same key gets the stored result, marked replayed', async () => {
    const ledger: { amount: number; key: string }[] = [];
    const pair = await inMemoryPair(paymentsServer(ledger));
    after(() => pair.close());
    const key = randomUUID();

    const first = await pair.client.callTool({
      name: 'create_payment',
      arguments: { amount: 500, idempotencyKey: key },
    });
    const again = await pair.client.callTool({
      name: 'create_payment',
      arguments: { amount: 500, idempotencyKey: key },
    });

    assert.equal(ledger.length, 1);
    assert.deepEqual(first.content, [{ type: 'text', text: 'charged 500' }]);
    assert.deepEqual(again.content, first.content);
    assert.deepEqual(again.structuredContent, { charged: 500 });
    assert.equal(first._meta?.['io.idemkit/replayed'], false);
    assert.equal(again._meta?.['io.idemkit/replayed'], true);
  });

  it('an agent that retries after dropped answers causes each effect once; without idemkit it doubles them', async () => {
    // Negative control first: the same agent against the same tool registered without idemkit.
    const plainLedger: number[] = [];
    const plain = await inMemoryPair((server) => {
      server.registerTool(
        'create_payment',
        { inputSchema: { amount: z.number(), idempotencyKey: z.string() } },
        async ({ amount }) => {
          plainLedger.push(amount);
          return { content: [{ type: 'text', text: `charged ${amount}` }] };
        },
      );
    });
    after(() => plain.close());
    const ledger: { amount: number; key: string }[] = [];
    const keyed = await inMemoryPair(paymentsServer(ledger));
    after(() => keyed.close());

    for (const [pair, label] of [
      [plain, 'plain'],
      [keyed, 'keyed'],
    ] as const) {
      for (let action = 0; action < 5; action++) {
        // Each action's first two answers are lost on the way back; the agent retries with the same key.
        pair.dropNextResult();
        pair.dropNextResult();
        const result = await callWithRetries(
          pair.client,
          'create_payment',
          { amount: 100 + action, idempotencyKey: `${label}-action-${action}` },
          4,
          300,
        );
        assert.deepEqual(result.content, [{ type: 'text', text: `charged ${100 + action}` }]);
      }
    }
    assert.equal(ledger.length, 5, 'one effect per action with idemkit');
    assert.deepEqual(
      ledger.map((e) => e.amount),
      [100, 101, 102, 103, 104],
    );
    assert.ok(
      plainLedger.length > 5,
      `the negative control sees the duplicates (${plainLedger.length} effects for 5 actions)`,
    );
  });

  it('the key may come in _meta instead of the arguments', async () => {
    const ledger: { amount: number; key: string }[] = [];
    const pair = await inMemoryPair(paymentsServer(ledger));
    after(() => pair.close());
    const call = () =>
      pair.client.callTool({
        name: 'create_payment',
        arguments: { amount: 7 },
        _meta: { 'io.idemkit/idempotency-key': 'meta-key-1' },
      });
    await call();
    const again = await call();
    assert.equal(ledger.length, 1);
    assert.equal(again._meta?.['io.idemkit/replayed'], true);
  });

  it('answers a missing, invalid, reused or concurrent key with coded tool errors, and never runs the tool for them', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const ledger: { amount: number; key: string }[] = [];
    const pair = await inMemoryPair(paymentsServer(ledger, {}, gate));
    after(() => pair.close());

    const missing = await pair.client.callTool({ name: 'create_payment', arguments: { amount: 1 } });
    assert.equal(missing.isError, true);
    assert.equal(idemkitError(missing)?.error, 'idempotency_key_required');

    const invalid = await pair.client.callTool({
      name: 'create_payment',
      arguments: { amount: 1, idempotencyKey: 'has space' },
    });
    assert.equal(idemkitError(invalid)?.error, 'idempotency_key_invalid');

    const running = pair.client.callTool({
      name: 'create_payment',
      arguments: { amount: 1, idempotencyKey: 'k-1' },
    });
    await new Promise((r) => setTimeout(r, 50));
    const concurrent = await pair.client.callTool({
      name: 'create_payment',
      arguments: { amount: 1, idempotencyKey: 'k-1' },
    });
    assert.equal(idemkitError(concurrent)?.error, 'idempotency_in_flight');
    assert.ok((idemkitError(concurrent)?.retryAfterSeconds ?? 0) >= 1);
    release();
    await running;

    const reused = await pair.client.callTool({
      name: 'create_payment',
      arguments: { amount: 2, idempotencyKey: 'k-1' },
    });
    assert.equal(reused.isError, true);
    assert.equal(idemkitError(reused)?.error, 'idempotency_key_reused');
    assert.equal(ledger.length, 1, 'only the first k-1 call ran');
    // The error text carries the same code, for agents that read only content.
    assert.match(JSON.stringify(reused.content), /idempotency_key_reused/);
  });

  it('lists keyed tools with the key argument and a marker; read-only tools pass through un-keyed', async () => {
    const ledger: { amount: number; key: string }[] = [];
    const pair = await inMemoryPair(paymentsServer(ledger));
    after(() => pair.close());
    const { tools } = await pair.client.listTools();
    const payment = tools.find((t) => t.name === 'create_payment');
    const balance = tools.find((t) => t.name === 'get_balance');
    assert.ok(payment && balance);
    assert.ok('idempotencyKey' in (payment.inputSchema.properties ?? {}));
    assert.deepEqual(payment._meta?.['io.idemkit/idempotent'], { keyArgument: 'idempotencyKey' });
    assert.equal(payment.annotations?.idempotentHint, true);
    assert.equal(balance._meta?.['io.idemkit/idempotent'], undefined);
    const read = await pair.client.callTool({ name: 'get_balance', arguments: {} });
    assert.deepEqual(read.content, [{ type: 'text', text: 'balance 0' }]);
  });

  it('scopes keys by principal: two callers with the same key each run once, and never see the other result', async () => {
    const ledger: { amount: number; key: string }[] = [];
    let who = 'agent-a';
    const pair = await inMemoryPair(paymentsServer(ledger, { principal: () => who }));
    after(() => pair.close());
    await pair.client.callTool({
      name: 'create_payment',
      arguments: { amount: 10, idempotencyKey: 'shared' },
    });
    who = 'agent-b';
    const other = await pair.client.callTool({
      name: 'create_payment',
      arguments: { amount: 20, idempotencyKey: 'shared' },
    });
    assert.equal(ledger.length, 2);
    assert.deepEqual(other.content, [{ type: 'text', text: 'charged 20' }]);
    assert.notEqual(ledger[0]?.key, ledger[1]?.key, 'downstream keys differ per principal');
  });

  it('refuses keyed calls without a principal unless anonymous keys are allowed', async () => {
    const ledger: { amount: number; key: string }[] = [];
    const refusing = await inMemoryPair(paymentsServer(ledger, { principal: () => undefined }));
    after(() => refusing.close());
    const refused = await refusing.client.callTool({
      name: 'create_payment',
      arguments: { amount: 1, idempotencyKey: 'a' },
    });
    assert.equal(idemkitError(refused)?.error, 'idempotency_principal_required');
    assert.equal(ledger.length, 0);

    const open = await inMemoryPair(
      paymentsServer(ledger, { principal: () => undefined, allowAnonymous: true }),
    );
    after(() => open.close());
    await open.client.callTool({ name: 'create_payment', arguments: { amount: 1, idempotencyKey: 'a' } });
    await open.client.callTool({ name: 'create_payment', arguments: { amount: 1, idempotencyKey: 'a' } });
    assert.equal(ledger.length, 1);
  });

  it('a tool that throws stores nothing: the retry with the same key runs again', async () => {
    let calls = 0;
    const pair = await inMemoryPair((server) => {
      const tools = idempotentTools(server, {
        idem: createIdempotency({ store: memoryStore(quiet), ...quiet }),
        principal: asAgent('a'),
      });
      tools.register('send_email', { inputSchema: { to: z.string() } }, async ({ to }: { to: string }) => {
        calls++;
        if (calls === 1) throw new Error('smtp timeout before sending');
        return { content: [{ type: 'text', text: `sent to ${to}` }] };
      });
    });
    after(() => pair.close());
    const failed = await pair.client.callTool({
      name: 'send_email',
      arguments: { to: 'a@example.com', idempotencyKey: 'e-1' },
    });
    assert.equal(failed.isError, true);
    assert.equal(idemkitError(failed), undefined, 'the tool own error, not an idemkit code');
    const retried = await pair.client.callTool({
      name: 'send_email',
      arguments: { to: 'a@example.com', idempotencyKey: 'e-1' },
    });
    assert.deepEqual(retried.content, [{ type: 'text', text: 'sent to a@example.com' }]);
    assert.equal(calls, 2);
  });

  it('works on a shared store (SQLite): a second server process-like instance replays the first one result', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'idemkit-mcp-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'tools.db');
    const ledger: { amount: number; key: string }[] = [];
    const store = sqliteStore({ path });
    after(() => store.close());
    const one = await inMemoryPair(paymentsServer(ledger, { store }));
    after(() => one.close());
    const storeTwo = sqliteStore({ path });
    after(() => storeTwo.close());
    const two = await inMemoryPair(paymentsServer(ledger, { store: storeTwo }));
    after(() => two.close());
    await one.client.callTool({ name: 'create_payment', arguments: { amount: 3, idempotencyKey: 'sq-1' } });
    const replay = await two.client.callTool({
      name: 'create_payment',
      arguments: { amount: 3, idempotencyKey: 'sq-1' },
    });
    assert.equal(ledger.length, 1);
    assert.equal(replay._meta?.['io.idemkit/replayed'], true);
  });

  it('adds the key to Zod 3 shapes and to Zod object schemas alike, and refuses a tool that already has the argument', async () => {
    let runs = 0;
    const pair = await inMemoryPair((server) => {
      const tools = idempotentTools(server, {
        idem: createIdempotency({ store: memoryStore(quiet), ...quiet }),
        principal: asAgent('a'),
      });
      const handler = async () => {
        runs++;
        return { content: [{ type: 'text', text: 'ok' }] };
      };
      tools.register('v3_shape', { inputSchema: { n: z3.number() } }, handler);
      tools.register('v4_object', { inputSchema: z.object({ n: z.number() }) }, handler);
      assert.throws(
        () => tools.register('clash', { inputSchema: { idempotencyKey: z.string() } }, handler),
        /already has an argument named idempotencyKey/,
      );
      assert.deepEqual([...tools.keyed], ['v3_shape', 'v4_object']);
    });
    after(() => pair.close());
    for (const name of ['v3_shape', 'v4_object']) {
      await pair.client.callTool({ name, arguments: { n: 1, idempotencyKey: `k-${name}` } });
      const again = await pair.client.callTool({ name, arguments: { n: 1, idempotencyKey: `k-${name}` } });
      assert.equal(again._meta?.['io.idemkit/replayed'], true);
    }
    assert.equal(runs, 2);
  });

  it('a tool that throws after ctx.effectsStarted() holds the key: the retry gets idempotency_outcome_uncertain, not a second run', async () => {
    let calls = 0;
    const pair = await inMemoryPair((server) => {
      const tools = idempotentTools(server, {
        idem: createIdempotency({ store: memoryStore(quiet), ...quiet }),
        principal: asAgent('a'),
      });
      tools.register('send_email', { inputSchema: { to: z.string() } }, async (_args, _extra, ctx) => {
        calls++;
        ctx.effectsStarted();
        throw new Error('connection reset after the SMTP DATA command');
      });
    });
    after(() => pair.close());
    const args = { to: 'a@example.com', idempotencyKey: 'e-uncertain' };
    const failed = await pair.client.callTool({ name: 'send_email', arguments: args });
    assert.equal(failed.isError, true);
    assert.equal(idemkitError(failed), undefined, 'the first caller sees the tool own error');
    const retried = await pair.client.callTool({ name: 'send_email', arguments: args });
    assert.equal(idemkitError(retried)?.error, 'idempotency_outcome_uncertain');
    assert.deepEqual(
      (retried.structuredContent as { error?: string } | undefined)?.error,
      'idempotency_outcome_uncertain',
    );
    assert.equal(calls, 1);
  });

  it('a returned isError result is the tool answer: stored and replayed, not run again', async () => {
    let calls = 0;
    const pair = await inMemoryPair((server) => {
      const tools = idempotentTools(server, {
        idem: createIdempotency({ store: memoryStore(quiet), ...quiet }),
        principal: asAgent('a'),
      });
      tools.register('create_payment', { inputSchema: { amount: z.number() } }, async () => {
        calls++;
        return { isError: true, content: [{ type: 'text', text: 'card declined' }] };
      });
    });
    after(() => pair.close());
    const args = { amount: 5, idempotencyKey: 'declined-1' };
    const first = await pair.client.callTool({ name: 'create_payment', arguments: args });
    const again = await pair.client.callTool({ name: 'create_payment', arguments: args });
    assert.equal(calls, 1);
    assert.equal(again.isError, true);
    assert.deepEqual(again.content, first.content);
    assert.equal(again._meta?.['io.idemkit/replayed'], true);
  });

  it('with wait, a concurrent duplicate waits for the first call and gets its result (one effect)', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let calls = 0;
    const pair = await inMemoryPair((server) => {
      const tools = idempotentTools(server, {
        idem: createIdempotency({ store: memoryStore(quiet), ...quiet }),
        principal: asAgent('a'),
        wait: 3_000,
      });
      tools.register(
        'create_payment',
        { inputSchema: { amount: z.number() } },
        async ({ amount }: { amount: number }) => {
          calls++;
          await gate;
          return { content: [{ type: 'text', text: `charged ${amount}` }] };
        },
      );
    });
    after(() => pair.close());
    const args = { amount: 9, idempotencyKey: 'waited' };
    const first = pair.client.callTool({ name: 'create_payment', arguments: args });
    await new Promise((r) => setTimeout(r, 50));
    const duplicate = pair.client.callTool({ name: 'create_payment', arguments: args });
    await new Promise((r) => setTimeout(r, 50));
    release();
    const [a, b] = await Promise.all([first, duplicate]);
    assert.equal(calls, 1);
    assert.deepEqual(b.content, a.content);
    assert.equal(b._meta?.['io.idemkit/replayed'], true);
  });

  it('a result too large to keep runs once; its retry gets idempotency_result_unavailable', async () => {
    let calls = 0;
    const pair = await inMemoryPair((server) => {
      const tools = idempotentTools(server, {
        idem: createIdempotency({ store: memoryStore(quiet), maxStoredBytes: 64, ...quiet }),
        principal: asAgent('a'),
      });
      tools.register(
        'export_report',
        { inputSchema: { rows: z.number() } },
        async ({ rows }: { rows: number }) => {
          calls++;
          return { content: [{ type: 'text', text: 'x'.repeat(rows) }] };
        },
      );
    });
    after(() => pair.close());
    const args = { rows: 500, idempotencyKey: 'big-1' };
    const first = await pair.client.callTool({ name: 'export_report', arguments: args });
    assert.equal(first.isError, undefined);
    const again = await pair.client.callTool({ name: 'export_report', arguments: args });
    assert.equal(idemkitError(again)?.error, 'idempotency_result_unavailable');
    assert.equal(calls, 1);
  });

  it('a tool with an output schema: its replay validates, and coded errors leave structuredContent out (the client would reject it)', async () => {
    const ledger: { amount: number; key: string }[] = [];
    const pair = await inMemoryPair((server) => {
      const tools = idempotentTools(server, {
        idem: createIdempotency({ store: memoryStore(quiet), ...quiet }),
        principal: asAgent('a'),
      });
      tools.register(
        'create_payment',
        { inputSchema: { amount: z.number() }, outputSchema: { charged: z.number() } },
        async ({ amount }: { amount: number }, _extra, ctx) => {
          ledger.push({ amount, key: ctx.downstreamKey() });
          return {
            content: [{ type: 'text', text: `charged ${amount}` }],
            structuredContent: { charged: amount },
          };
        },
      );
      tools.register('send_email', { inputSchema: { to: z.string() } }, async () => ({ content: [] }));
      // Why: an error result whose structuredContent misses the output schema is refused by the client.
      server.registerTool('plain_refusal', { outputSchema: { charged: z.number() } }, async () => ({
        isError: true,
        content: [{ type: 'text', text: 'refused' }],
        structuredContent: { error: 'idempotency_key_reused' },
      }));
    });
    after(() => pair.close());
    // The client validates structured content against the listed output schema.
    await pair.client.listTools();
    await pair.client.callTool({ name: 'create_payment', arguments: { amount: 1, idempotencyKey: 'o-1' } });
    const replay = await pair.client.callTool({
      name: 'create_payment',
      arguments: { amount: 1, idempotencyKey: 'o-1' },
    });
    assert.deepEqual(replay.structuredContent, { charged: 1 });
    const reused = await pair.client.callTool({
      name: 'create_payment',
      arguments: { amount: 2, idempotencyKey: 'o-1' },
    });
    assert.equal(idemkitError(reused)?.error, 'idempotency_key_reused');
    assert.equal(reused.structuredContent, undefined);
    const missing = await pair.client.callTool({ name: 'send_email', arguments: { to: 'x' } });
    assert.deepEqual(missing.structuredContent, {
      error: 'idempotency_key_required',
      message: idemkitError(missing)?.message ?? '',
    });
    assert.equal(ledger.length, 1);
    await assert.rejects(
      pair.client.callTool({ name: 'plain_refusal', arguments: {} }),
      /does not match the tool's output schema/,
    );
  });

  it('by default the principal is the MCP auth info: client id and token subject; two users of one client never share a key', async () => {
    let auth:
      | { token: string; clientId: string; scopes: string[]; extra?: Record<string, unknown> }
      | undefined;
    let calls = 0;
    const pair = await inMemoryPair(
      (server) => {
        const tools = idempotentTools(server, {
          idem: createIdempotency({ store: memoryStore(quiet), ...quiet }),
        });
        tools.register(
          'create_payment',
          { inputSchema: { amount: z.number() } },
          async ({ amount }: { amount: number }) => {
            calls++;
            return {
              content: [
                { type: 'text', text: `charged ${amount} for ${auth?.extra?.sub ?? auth?.clientId}` },
              ],
            };
          },
        );
      },
      { auth: () => auth },
    );
    after(() => pair.close());
    const args = { amount: 3, idempotencyKey: 'shared-key' };
    const refused = await pair.client.callTool({ name: 'create_payment', arguments: args });
    assert.equal(idemkitError(refused)?.error, 'idempotency_principal_required');

    auth = { token: 't1', clientId: 'desktop-app', scopes: [], extra: { sub: 'alice' } };
    const alice = await pair.client.callTool({ name: 'create_payment', arguments: args });
    auth = { token: 't2', clientId: 'desktop-app', scopes: [], extra: { sub: 'bob' } };
    const bob = await pair.client.callTool({ name: 'create_payment', arguments: args });
    auth = { token: 't3-refreshed', clientId: 'desktop-app', scopes: [], extra: { sub: 'alice' } };
    const aliceAgain = await pair.client.callTool({ name: 'create_payment', arguments: args });

    assert.equal(calls, 2, 'alice and bob each ran once');
    assert.deepEqual(bob.content, [{ type: 'text', text: 'charged 3 for bob' }]);
    assert.deepEqual(aliceAgain.content, alice.content, 'a new token of the same user replays');
    assert.equal(aliceAgain._meta?.['io.idemkit/replayed'], true);
    assert.notEqual(
      mcpAuthPrincipal({ authInfo: { clientId: 'a', extra: { sub: 'b' } } }),
      mcpAuthPrincipal({ authInfo: { clientId: '["a","b"]' } }),
      'no client id passes for another client and subject',
    );
  });

  it('an un-keyed tool without an input schema gets {} as args and a ctx without a downstream key', async () => {
    const seen: unknown[] = [];
    const pair = await inMemoryPair((server) => {
      const tools = idempotentTools(server, {
        idem: createIdempotency({ store: memoryStore(quiet), ...quiet }),
        principal: asAgent('a'),
      });
      tools.register('get_time', { annotations: { readOnlyHint: true } }, async (args, _extra, ctx) => {
        seen.push(args);
        assert.throws(() => ctx.downstreamKey(), /not keyed/);
        return { content: [{ type: 'text', text: 'noon' }] };
      });
    });
    after(() => pair.close());
    const result = await pair.client.callTool({ name: 'get_time', arguments: {} });
    assert.deepEqual(result.content, [{ type: 'text', text: 'noon' }]);
    assert.deepEqual(seen, [{}]);
  });
});
