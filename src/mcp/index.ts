/**
 * `idemkit/mcp`: idempotent tools for MCP servers built on `@modelcontextprotocol/sdk`.
 * A keyed tool call runs once per (principal, tool, key); every retry gets the stored result.
 */
export { META, type ToolError, type ToolErrorCode, toolError } from './errors.js';
export {
  type ArgsOf,
  type IdempotentTools,
  type IdempotentToolsOptions,
  idempotentTools,
  type KeyedToolHandler,
  type McpServerLike,
  mcpAuthPrincipal,
  type RegisterOptions,
  type ToolCallExtra,
  type ToolConfig,
  type ToolResult,
} from './tools.js';
