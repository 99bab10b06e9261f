import { createIdempotency, type Idempotency } from '../core/engine.js';
import type { IdempotencyOptions } from '../core/options.js';
import type { EngineRequest } from '../core/request.js';
import { checkedRouteSettings, type RouteSettings, withRouteSettings } from '../core/route-settings.js';

/** The metadata key `@Idempotent()` sets (readable with Nest's `Reflector`). */
export const IDEMPOTENT_METADATA = 'idemkit:idempotent';

/**
 * What `@Idempotent()` sets for a handler or a controller: `false` leaves it uncovered; an object
 * gives it its own value for options the engine already takes per request
 * (core/route-settings.ts). Anything not set follows the module's options.
 */
export type IdempotentSettings = false | RouteSettings;

type Settings = RouteSettings;

/** Checks a decorator's settings where it is applied (class definition time), then freezes them. */
export function checkedSettings(settings: IdempotentSettings): IdempotentSettings {
  if (settings === false) return false;
  return checkedRouteSettings(settings, {
    notAnObject: '@Idempotent(): pass false or an object of per-handler options',
    unknownName: (name, known) => `@Idempotent(): ${name} is not a per-handler option (${known})`,
  });
}

/**
 * The engine as the interceptor uses it, with the handler settings of each request in flight.
 * The engine makes every decision; a handler's settings only supply the values its per-request
 * options return (looked up by the framework's request, which the engine hands them as
 * `native`).
 */
export interface NestSetup {
  readonly engine: Idempotency;
  /** The handler settings of requests the interceptor is deciding, by framework request. */
  readonly settings: WeakMap<object, Settings>;
  /** An engine passed in ready-made: its options are fixed, so handlers cannot set any. */
  readonly shared: boolean;
}

export function setupFor(input: IdempotencyOptions | Idempotency): NestSetup {
  const settings = new WeakMap<object, Settings>();
  if ('begin' in input) return { engine: input, settings, shared: true };
  const routeOf = (request: EngineRequest) => settings.get(request.native as object);
  return { engine: createIdempotency(withRouteSettings(input, routeOf)), settings, shared: false };
}
