import type { FastifyRequest } from 'fastify';
import type { ExecuteDecision } from '../core/execution.js';
import type { RouteSettings } from './fastify-route.js';

/** Per-request state under a symbol the plugin decorates (one shape for every request). */
export const kState = Symbol('idemkit.fastify.state');

/** Where a covered request is: its body is read, then begin() decides, the handler runs, the answer is committed. */
export const READING = 0;
export const DECIDING = 1;
export const RUNNING = 2;
export const ENDING = 3;
export const DONE = 4;

export class RequestState {
  readonly route: RouteSettings;
  body: Uint8Array = EMPTY;
  phase = READING;
  decision: ExecuteDecision | undefined;
  /** What the handler (or a later hook) threw, seen by `onError` before the error handler ran. */
  failure: unknown;
  failed = false;

  constructor(route: RouteSettings) {
    this.route = route;
  }
}

export type StatefulRequest = FastifyRequest & { [kState]: RequestState | null };

/** The state of a request the plugin covers, or null. */
export function stateOf(request: FastifyRequest): RequestState | null {
  return (request as StatefulRequest)[kState];
}

const EMPTY = new Uint8Array(0);
