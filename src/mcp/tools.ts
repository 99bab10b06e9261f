import type { HandlerContext } from '../core/decision.js';
import type { Idempotency } from '../core/engine.js';
import { IdempotencyConfigError } from '../core/errors.js';
import { parseIdempotencyKey } from '../core/key.js';
import { META, type ToolErrorCode, toolError, toolErrorOf } from './errors.js';
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

/** What a Zod type parses to (Zod 3 and Zod 4 classic carry `_output`, Zod 4 core `_zod.output`). */
type OutputOf<T> = T extends { _zod: { output: infer O } } ? O : T extends { _output: infer O } ? O : unknown;

/** The parsed arguments of a raw shape: keys whose value may be `undefined` are optional. */
type ShapeArgs<S> = {
  [K in keyof S as undefined extends OutputOf<S[K]> ? never : K]: OutputOf<S[K]>;
} & { [K in keyof S as undefined extends OutputOf<S[K]> ? K : never]?: OutputOf<S[K]> };

/**
 * The arguments a handler gets for an input schema (the key argument taken out), inferred
 * without importing Zod: `{}` without a schema, a Zod object's output, or a raw shape's.
 */
export type ArgsOf<Schema> = Schema extends undefined
  ? Record<string, never>
  : Schema extends { _zod: unknown } | { _def: unknown }
    ? OutputOf<Schema>
    : ShapeArgs<Schema>;

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
   * Who calls. Default: {@link mcpAuthPrincipal} (the MCP auth info's client id and token
   * subject). When given, it alone decides (`undefined` or `''`: no principal). Never the
   * session id: a retry after a reconnect comes in a new session and must still find the first
   * call's result.
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
  /**
   * `false` registers the tool un-keyed (no key, no record; its handler gets `{}` as args when
   * it has no input schema, and a `ctx` whose `downstreamKey()` throws). Default: keyed unless
   * `annotations.readOnlyHint`.
   */
  keyed?: boolean;
}

export interface IdempotentTools {
  /**
   * `server.registerTool(name, config, handler)` with idempotency: a keyed tool takes
   * `idempotencyKey` (or `_meta["io.idemkit/idempotency-key"]`), runs once per (principal, tool,
   * key), and every retry gets the stored result. A returned result is stored, `isError` ones
   * too; a handler that throws stores nothing, and the retry runs again.
   */
  register<Schema extends InputSchema | undefined = undefined>(
    name: string,
    config: ToolConfig & { inputSchema?: Schema },
    handler: KeyedToolHandler<ArgsOf<Schema>>,
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
      if (!isKeyed) return register(name, config, passThrough(name, config, handler));
      const listed: ToolConfig = {
        ...config,
        inputSchema: withKeyArgument(name, config.inputSchema, keyArgument),
        // With a key, calling again changes nothing more: the client may retry it.
        annotations: { ...config.annotations, idempotentHint: true },
        _meta: { ...config._meta, [META.keyed]: { keyArgument } },
      };
      keyed.push(name);
      const structuredErrors = config.outputSchema === undefined;
      return register(name, listed, (args: Record<string, unknown> | undefined, extra: ToolCallExtra) =>
        callKeyed(
          name,
          args ?? {},
          extra,
          handler as unknown as KeyedToolHandler<Record<string, unknown>>,
          structuredErrors,
        ),
      );
    },
  };

  async function callKeyed(
    tool: string,
    args: Record<string, unknown>,
    extra: ToolCallExtra,
    handler: KeyedToolHandler<Record<string, unknown>>,
    structured: boolean,
  ): Promise<ToolResult> {
    const refuse = (code: ToolErrorCode, message: string) => toolError(code, message, undefined, structured);
    const { [keyArgument]: fromArgs, ...params } = args;
    // The argument wins over `_meta`: it is what the model chose for this action.
    const raw = fromArgs ?? extra._meta?.[META.key] ?? extra._meta?.[BARE_META_KEY];
    if (raw === undefined || raw === null || raw === '') {
      return refuse(
        'idempotency_key_required',
        `${tool} changes things, so it takes ${keyArgument}: a new UUID for each intended action, sent again unchanged when retrying that action`,
      );
    }
    const parsed = typeof raw === 'string' ? parseIdempotencyKey([raw]) : undefined;
    if (!parsed?.ok) {
      const reason = parsed ? parsed.reason : 'the key must be a string';
      return refuse('idempotency_key_invalid', `${keyArgument}: ${reason}`);
    }
    const principal = options.principal ? await options.principal(extra) : mcpAuthPrincipal(extra);
    if (!principal && !options.allowAnonymous) {
      return refuse(
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
      const refusal = thrownByTool ? undefined : toolErrorOf(error, structured);
      if (refusal) return refusal;
      throw error;
    }
  }
}

/**
 * The default principal: the MCP auth info's `clientId`, with the token's subject
 * (`authInfo.extra.sub`, where a token verifier puts it) when there is one, so two users of one
 * OAuth client never share keys. `undefined` without auth info. Compose it in a `principal()`
 * option to add to it.
 */
export function mcpAuthPrincipal(extra: ToolCallExtra): string | undefined {
  const auth = extra.authInfo;
  const clientId = typeof auth?.clientId === 'string' ? auth.clientId : '';
  const sub = auth?.extra?.sub;
  const subject = typeof sub === 'string' ? sub : '';
  if (!clientId && !subject) return undefined;
  // JSON keeps the two parts apart: no client id can pass for another client's id + subject.
  return `mcp:${JSON.stringify(subject ? [clientId, subject] : [clientId])}`;
}

/** An un-keyed tool: the handler's signature holds (args always an object, a ctx without a key). */
function passThrough(
  tool: string,
  config: ToolConfig,
  handler: unknown,
): (...callArgs: unknown[]) => unknown {
  const call = handler as KeyedToolHandler<Record<string, unknown>>;
  const ctx = (extra: ToolCallExtra): HandlerContext => ({
    signal: extra.signal ?? new AbortController().signal,
    fencingToken: 0,
    downstreamKey() {
      throw new IdempotencyConfigError(`tool ${tool} is not keyed: it has no downstream key`);
    },
    effectsStarted() {},
  });
  // The SDK calls a tool without an input schema as (extra), one with a schema as (args, extra).
  if (config.inputSchema === undefined) {
    return (extra) => call({}, extra as ToolCallExtra, ctx(extra as ToolCallExtra));
  }
  return (args, extra) =>
    call((args ?? {}) as Record<string, unknown>, extra as ToolCallExtra, ctx(extra as ToolCallExtra));
}
