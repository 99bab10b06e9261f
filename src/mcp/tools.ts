import type { HandlerContext } from '../core/decision.js';
import type { Idempotency } from '../core/engine.js';
import { IdempotencyConfigError } from '../core/errors.js';
import { parseIdempotencyKey } from '../core/key.js';
import { META, toolError, toolErrorOf } from './errors.js';
import { type InputSchema, withKeyArgument } from './schema.js';

/** What the SDK hands a tool callback besides its arguments (the subset read here). */
export interface ToolCallExtra {
  /** Set by the transport's auth middleware: who calls. Its `clientId` is the default principal. */
  authInfo?: { clientId?: string; extra?: Record<string, unknown> } | undefined;
  /** Never part of the scope: a retry after a reconnect arrives in a new session. */
  sessionId?: string | undefined;
  _meta?: Record<string, unknown> | undefined;
  signal?: AbortSignal;
}

/** A `CallToolResult` (JSON): what a keyed call stores and every retry gets back. */
export interface ToolResult {
  [key: string]: unknown;
  content?: unknown[];
  isError?: boolean;
  _meta?: Record<string, unknown>;
}

/** `registerTool`'s config (the subset read here). */
export interface ToolConfig {
  title?: string;
  description?: string;
  inputSchema?: InputSchema;
  outputSchema?: unknown;
  annotations?: { readOnlyHint?: boolean; idempotentHint?: boolean; [hint: string]: unknown };
  _meta?: Record<string, unknown>;
}

/** The `McpServer` of `@modelcontextprotocol/sdk/server/mcp.js`, typed as the subset used. */
export interface McpServerLike {
  registerTool(name: string, config: never, callback: never): unknown;
}

/**
 * A keyed tool's handler: the arguments without the key, the SDK's `extra`, and the engine's
 * `ctx` (`downstreamKey()` for calls to other systems, `effectsStarted()`, `signal`, fencing).
 */
export type KeyedToolHandler<Args> = (
  args: Args,
  extra: ToolCallExtra,
  ctx: HandlerContext,
) => ToolResult | Promise<ToolResult>;

export interface IdempotentToolsOptions {
  /** The engine (`createIdempotency({ store, … })`): its store, leases and retention. */
  idem: Idempotency;
  /**
   * Who calls. Default: the MCP auth info's `clientId`. Never the session id: a retry after a
   * reconnect comes in a new session and must still find the first call's result.
   */
  principal?: (extra: ToolCallExtra) => string | undefined | Promise<string | undefined>;
  /** Keys without a principal share one scope for every caller: only when you ask. @default false */
  allowAnonymous?: boolean;
  /** The argument added to keyed tools' input schemas. @default 'idempotencyKey' */
  keyArgument?: string;
  /** Separates tenants sharing a store. */
  tenant?: (extra: ToolCallExtra) => string | undefined;
  /** Hold a concurrent duplicate up to this long for the first call's result (true: 5 000 ms). */
  wait?: boolean | number;
}

export interface RegisterOptions {
  /** `false` registers the tool as it is (no key, no record). Default: keyed unless `annotations.readOnlyHint`. */
  keyed?: boolean;
}

export interface IdempotentTools {
  /**
   * `server.registerTool(name, config, handler)` with idempotency: a keyed tool takes
   * `idempotencyKey` (or `_meta["io.idemkit/idempotency-key"]`), runs once per (principal, tool,
   * key), and every retry gets the stored result. A returned result is stored, `isError` ones
   * too; a handler that throws stores nothing, and the retry runs again.
   */
  register<Args extends Record<string, unknown>>(
    name: string,
    config: ToolConfig,
    handler: KeyedToolHandler<Args>,
    options?: RegisterOptions,
  ): unknown;
  /** The names of the keyed tools registered so far. */
  readonly keyed: readonly string[];
}

const DEFAULT_KEY_ARGUMENT = 'idempotencyKey';
/** The key name some clients put in `_meta` without a prefix; read as well. */
const BARE_META_KEY = 'idempotencyKey';

/**
 * Idempotent tools on an MCP server built with the official SDK.
 * @example
 * const tools = idempotentTools(server, { idem: createIdempotency({ store }) })
 * tools.register('create_payment', { inputSchema: { amount: z.number() } }, async ({ amount }) => ({
 *   content: [{ type: 'text', text: `charged ${amount}` }],
 * }))
 */
export function idempotentTools(server: McpServerLike, options: IdempotentToolsOptions): IdempotentTools {
  const keyArgument = options.keyArgument ?? DEFAULT_KEY_ARGUMENT;
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(keyArgument)) {
    throw new IdempotencyConfigError(
      `idempotentTools: keyArgument must be an identifier, got ${keyArgument}`,
    );
  }
  const keyed: string[] = [];
  const register = (name: string, config: ToolConfig, callback: unknown) =>
    (server.registerTool as (n: string, c: ToolConfig, cb: unknown) => unknown).call(
      server,
      name,
      config,
      callback,
    );

  return {
    keyed,
    register(name, config, handler, registerOptions = {}) {
      const isKeyed = registerOptions.keyed ?? config.annotations?.readOnlyHint !== true;
      if (!isKeyed) return register(name, config, handler);
      const listed: ToolConfig = {
        ...config,
        inputSchema: withKeyArgument(name, config.inputSchema, keyArgument),
        // With a key, calling again changes nothing more: the client may retry it.
        annotations: { ...config.annotations, idempotentHint: true },
        _meta: { ...config._meta, [META.keyed]: { keyArgument } },
      };
      keyed.push(name);
      return register(name, listed, (args: Record<string, unknown> | undefined, extra: ToolCallExtra) =>
        callKeyed(name, args ?? {}, extra, handler as KeyedToolHandler<Record<string, unknown>>),
      );
    },
  };

  async function callKeyed(
    tool: string,
    args: Record<string, unknown>,
    extra: ToolCallExtra,
    handler: KeyedToolHandler<Record<string, unknown>>,
  ): Promise<ToolResult> {
    const { [keyArgument]: fromArgs, ...params } = args;
    const raw = fromArgs ?? extra._meta?.[META.key] ?? extra._meta?.[BARE_META_KEY];
    if (raw === undefined || raw === null || raw === '') {
      return toolError(
        'idempotency_key_required',
        `${tool} changes things, so it takes ${keyArgument}: a new UUID for each intended action, sent again unchanged when retrying that action`,
      );
    }
    const parsed = typeof raw === 'string' ? parseIdempotencyKey([raw]) : undefined;
    if (!parsed?.ok) {
      const reason = parsed ? parsed.reason : 'the key must be a string';
      return toolError('idempotency_key_invalid', `${keyArgument}: ${reason}`);
    }
    const principal = (await options.principal?.(extra)) ?? defaultPrincipal(extra);
    if (!principal && !options.allowAnonymous) {
      return toolError(
        'idempotency_principal_required',
        'this server keys tool calls per caller and could not tell who calls (no MCP auth info)',
      );
    }
    let ran = false;
    let thrownByTool = false;
    try {
      const result = await options.idem.run(
        {
          operation: `mcp-tool:${tool}`,
          key: parsed.key,
          params,
          principal: principal ?? '',
          tenant: options.tenant?.(extra) ?? '',
          ...(options.wait === undefined ? {} : { wait: options.wait }),
        },
        async (ctx) => {
          ran = true;
          try {
            return await handler(params, extra, ctx);
          } catch (error) {
            thrownByTool = true;
            throw error;
          }
        },
      );
      return { ...result, _meta: { ...result._meta, [META.replayed]: !ran } };
    } catch (error) {
      // The tool's own failure passes through (the SDK answers it as an error result); only
      // idemkit's refusals become the coded errors an agent can act on.
      const refusal = thrownByTool ? undefined : toolErrorOf(error);
      if (refusal) return refusal;
      throw error;
    }
  }
}

function defaultPrincipal(extra: ToolCallExtra): string | undefined {
  const clientId = extra.authInfo?.clientId;
  return clientId ? `mcp-client:${clientId}` : undefined;
}
