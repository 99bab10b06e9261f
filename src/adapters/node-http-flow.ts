import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Idempotency } from '../core/engine.js';
import type { HandlerContext } from '../core/execution.js';
import { engineRequestOf, sendEngineResponse } from './node-http.js';
import { captureResponse } from './node-http-capture.js';

/**
 * The whole flow for a node:http handler whose body has been read: decide, answer a replay or a
 * problem, or run `handler` under the claim with its writes to `res` captured and committed
 * before they are sent. A handler that throws (or rejects) before it answered ends the execution.
 * Adapters whose framework reports a handler's failure elsewhere call `captureResponse` themselves.
 */
export async function handleNodeRequest(
  engine: Pick<Idempotency, 'begin' | 'options'>,
  req: IncomingMessage,
  res: ServerResponse,
  body: Uint8Array,
  handler: (ctx?: HandlerContext) => unknown,
  native: unknown = req,
): Promise<void> {
  const decision = await engine.begin(engineRequestOf(req, body, native));
  switch (decision.kind) {
    case 'bypass':
      await handler();
      return;
    case 'reject':
    case 'replay':
      sendEngineResponse(res, decision.response);
      return;
    case 'execute': {
      const capture = captureResponse(res, decision, engine.options.maxStoredBytes);
      try {
        await handler(decision.ctx);
      } catch (error) {
        await capture.fail(error);
      }
      return;
    }
    default:
      return decision satisfies never;
  }
}
