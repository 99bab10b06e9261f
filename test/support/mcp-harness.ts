import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

/**
 * An MCP server and client joined by the SDK's in-memory transport. `dropNextResult()` makes the
 * server's next tools/call answer vanish on the way back (the server ran the tool; the client
 * never hears of it), as when a response is lost on the network.
 */
export async function inMemoryPair(build: (server: McpServer) => void) {
  const server = new McpServer({ name: 'test-server', version: '1.0.0' });
  build(server);
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  let drops = 0;
  const send = serverSide.send.bind(serverSide);
  serverSide.send = async (message: JSONRPCMessage, options) => {
    if (drops > 0 && 'result' in message && isToolResult(message.result)) {
      drops--;
      return;
    }
    return send(message, options);
  };
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
}): { error: string; retryAfterSeconds?: number } | undefined {
  return result._meta?.['io.idemkit/error'] as { error: string; retryAfterSeconds?: number } | undefined;
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
