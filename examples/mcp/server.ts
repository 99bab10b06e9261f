import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { pathToFileURL } from 'node:url';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';
// In your app: import { idempotentTools } from 'idemkit/mcp'; import { createIdempotency, memoryStore } from 'idemkit'
import { createIdempotency, type IdempotencyStore, memoryStore } from '../../src/index.js';
import { idempotentTools } from '../../src/mcp/index.js';

/**
 * An MCP server for AI agents with two tools that change the world, `create_payment` and
 * `send_email`, and one that only reads, `list_payments`. An agent retries a tool call whose
 * answer it never got (a timeout, a dropped connection, a new session): with the same
 * `idempotencyKey` the payment is made once and the retry gets the first result.
 * Use sqliteStore / postgresStore / redisStore in production, so keys outlive a restart and are
 * shared by every instance.
 */
export function createPaymentsMcp(options: { store?: IdempotencyStore; processingMs?: number } = {}) {
  const idem = createIdempotency({ store: options.store ?? memoryStore() });
  const payments: { id: string; amount: number; currency: string }[] = [];
  const emails: { to: string; subject: string }[] = [];

  /** One MCP server per session (the SDK's pattern); all of them share the engine and the data. */
  function buildServer(): McpServer {
    const server = new McpServer({ name: 'payments', version: '1.0.0' });
    const tools = idempotentTools(server, { idem });
    tools.register(
      'create_payment',
      {
        description: 'Charge the customer. Send a new idempotencyKey per payment, the same one on retries.',
        inputSchema: { amount: z.number().int().positive(), currency: z.string().length(3) },
      },
      async ({ amount, currency }, _extra, ctx) => {
        if (options.processingMs) await new Promise((r) => setTimeout(r, options.processingMs));
        // A real payment provider would get ctx.downstreamKey() as its own idempotency key.
        const payment = { id: `pay_${ctx.downstreamKey().slice(-12)}`, amount, currency };
        payments.push(payment);
        return { content: [{ type: 'text', text: JSON.stringify(payment) }], structuredContent: payment };
      },
    );
    tools.register(
      'send_email',
      { description: 'Send an email', inputSchema: { to: z.string().email(), subject: z.string() } },
      async ({ to, subject }) => {
        emails.push({ to, subject });
        return { content: [{ type: 'text', text: `sent "${subject}" to ${to}` }] };
      },
    );
    tools.register(
      'list_payments',
      { description: 'List the payments made', annotations: { readOnlyHint: true } },
      async () => ({ content: [{ type: 'text', text: JSON.stringify(payments) }] }),
    );
    return server;
  }

  const sessions = new Map<string, StreamableHTTPServerTransport>();

  async function handle(req: IncomingMessage & { auth?: AuthInfo }, res: ServerResponse) {
    if (!req.url?.startsWith('/mcp')) {
      res.writeHead(404).end();
      return;
    }
    // Demo authentication: `Authorization: Bearer <agent id>`. Verify a real token (OAuth) here;
    // its client id becomes the principal, so two agents' keys never meet.
    const token = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (!token) {
      res
        .writeHead(401, { 'content-type': 'application/json' })
        .end('{"error":"send Authorization: Bearer <agent>"}');
      return;
    }
    req.auth = { token, clientId: token, scopes: [] };
    const sessionId = req.headers['mcp-session-id'];
    let transport = typeof sessionId === 'string' ? sessions.get(sessionId) : undefined;
    if (!transport) {
      if (sessionId !== undefined) {
        res.writeHead(404).end();
        return;
      }
      const created = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => void sessions.set(id, created),
      });
      created.onclose = () => {
        if (created.sessionId) sessions.delete(created.sessionId);
      };
      await buildServer().connect(created);
      transport = created;
    }
    await transport.handleRequest(req, res);
  }

  const http: Server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  return { http, payments, emails, sessions };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { http, sessions } = createPaymentsMcp();
  http.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
    const address = http.address() as { port: number };
    console.log(`MCP payments API on http://127.0.0.1:${address.port}/mcp`);
  });
  process.on('SIGTERM', async () => {
    // Open sessions hold SSE streams: end them, or close() would wait for them forever.
    for (const transport of sessions.values()) await transport.close();
    http.closeAllConnections();
    http.close(() => process.exit(0));
  });
}
