import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

/**
 * An MCP server and client joined by the SDK's in-memory transport. `dropNextResult()` makes the
 * server's next tools/call answer vanish on the way back (the server ran the tool; the client
 * never hears of it), as when a response is lost on the network. `auth()` is what an auth
 * middleware would attach to each request (the SDK's `extra.authInfo`).
 */
export async function inMemoryPair(
  build: (server: McpServer) => void,
  options: { auth?: () => AuthInfo | undefined } = {},
) {
  const server = new McpServer({ name: 'test-server', version: '1.0.0' });
  build(server);
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  let drops = 0;
  const send = serverSide.send.bind(serverSide);
  serverSide.send = async (message: JSONRPCMessage, sendOptions) => {
    if (drops > 0 && 'result' in message && isToolResult(message.result)) {
      drops--;
      return;
    }
    return send(message, sendOptions);
  };
  const { auth } = options;
  if (auth) {
    const clientSend = clientSide.send.bind(clientSide);
    clientSide.send = (message: JSONRPCMessage, sendOptions) => {
      const authInfo = auth();
      return clientSend(message, authInfo ? { ...sendOptions, authInfo } : sendOptions);
    };
  }
  await server.connect(serverSide);
  const client = new Client({ name: 'test-agent', version: '1.0.0' });
  await client.connect(clientSide);
  return {
    server,
    client,
    dropNextResult() {
      drops++;
    },
    async close() {
      await client.close();
      await server.close();
    },
  };
}

function isToolResult(result: unknown): boolean {
  return typeof result === 'object' && result !== null && 'content' in result;
}

/** The coded idemkit error of a result, if it is one. */
export function idemkitError(result: {
  _meta?: Record<string, unknown> | undefined;
}): { error: string; message: string; retryAfterSeconds?: number } | undefined {
  return result._meta?.['io.idemkit/error'] as
    | { error: string; message: string; retryAfterSeconds?: number }
    | undefined;
}

/** What an agent does: call; on a timeout or a lost answer, call again with the same arguments. */
export async function callWithRetries(
  client: Client,
  name: string,
  args: Record<string, unknown>,
  attempts: number,
  timeoutMs: number,
) {
  let lastError: unknown;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      return await client.callTool({ name, arguments: args }, undefined, { timeout: timeoutMs });
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError;
}

/**
 * A Streamable HTTP MCP endpoint on 127.0.0.1 (an ephemeral port), one `McpServer` per session
 * as the SDK's examples do. `Authorization: Bearer <client>[:<subject>]` becomes the auth info
 * (demo authentication: the test's stand-in for a token verifier).
 */
export async function serveMcpOverHttp(build: (server: McpServer) => void) {
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const http = createServer((req: IncomingMessage & { auth?: AuthInfo }, res) => {
    const token = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (token) {
      const [clientId = '', sub] = token.split(':');
      req.auth = { token, clientId, scopes: [], ...(sub ? { extra: { sub } } : {}) };
    }
    const sessionId = req.headers['mcp-session-id'];
    let transport = typeof sessionId === 'string' ? sessions.get(sessionId) : undefined;
    const handle = async () => {
      if (!transport) {
        const created = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => void sessions.set(id, created),
        });
        const server = new McpServer({ name: 'test-server', version: '1.0.0' });
        build(server);
        await server.connect(created);
        transport = created;
      }
      await transport.handleRequest(req, res);
    };
    handle().catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const url = new URL(`http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`);
  return {
    url,
    async close() {
      // Sessions keep their SSE streams open: end them, then the listener.
      for (const transport of sessions.values()) await transport.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

/** A fresh agent session over Streamable HTTP: a new client and a new MCP session. */
export async function connectAgent(url: URL, bearer: string): Promise<Client> {
  const client = new Client({ name: 'agent', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(url, {
      requestInit: { headers: { authorization: `Bearer ${bearer}` } },
    }),
  );
  return client;
}

/**
 * An agent over HTTP that gives up on a slow answer and retries the same call in a new session
 * (a reconnect): the first attempt waits `firstTimeoutMs`, later ones longer. An
 * `idempotency_in_flight` answer is retried after its `retryAfterSeconds`. Bounded attempts.
 */
export async function reconnectingAgentCall(
  urls: URL[],
  bearer: string,
  name: string,
  args: Record<string, unknown>,
  firstTimeoutMs: number,
) {
  let lastError: unknown;
  for (let attempt = 0; attempt < 6; attempt++) {
    const client = await connectAgent(urls[attempt % urls.length] as URL, bearer);
    try {
      const timeout = attempt === 0 ? firstTimeoutMs : 5_000;
      const result = await client.callTool({ name, arguments: args }, undefined, { timeout });
      const coded = idemkitError(result);
      if (coded?.error !== 'idempotency_in_flight') return result;
      await new Promise((r) => setTimeout(r, (coded.retryAfterSeconds ?? 1) * 1_000));
    } catch (error) {
      lastError = error;
    } finally {
      await client.close();
    }
  }
  throw lastError ?? new Error(`${name}: still in flight after 6 attempts`);
}
