import { createIdempotency, type Idempotency } from '../core/engine.js';
import { IdempotencyConfigError } from '../core/errors.js';
import { DEFAULTS, type IdempotencyOptions, type PerRequest } from '../core/options.js';
import type { EngineRequest } from '../core/request.js';

/** The metadata key `@Idempotent()` sets (readable with Nest's `Reflector`). */
export const IDEMPOTENT_METADATA = 'idemkit:idempotent';

/**
 * What `@Idempotent()` sets for a handler or a controller: `false` leaves it uncovered; an object
 * gives it its own value for options the engine already takes per request. Anything not set
 * follows the module's options.
 */
export type IdempotentSettings =
  | false
  | {
      /** A covered request without a key: 400 `missing-key` (true) or passed through (false). */
      required?: boolean;
      leaseMs?: number;
      retentionMs?: number;
      /** Hold a concurrent duplicate up to this long (true: 5 000 ms), then replay. */
      wait?: boolean | number;
      /** Response headers replayed in addition to the built-in allowlist. */
      replayHeaders?: readonly string[];
    };

type Settings = Exclude<IdempotentSettings, false>;
const NAMES = ['required', 'leaseMs', 'retentionMs', 'wait', 'replayHeaders'] as const;
type Name = (typeof NAMES)[number];

/** Checks a decorator's settings where it is applied (class definition time), then freezes them. */
export function checkedSettings(settings: IdempotentSettings): IdempotentSettings {
  if (settings === false) return false;
  if (settings === null || typeof settings !== 'object') {
    throw new IdempotencyConfigError('@Idempotent(): pass false or an object of per-handler options');
  }
  for (const name of Object.keys(settings)) {
    if (!(NAMES as readonly string[]).includes(name)) {
      throw new IdempotencyConfigError(
        `@Idempotent(): ${name} is not a per-handler option (${NAMES.join(', ')})`,
      );
    }
  }
  const copy = { ...settings };
  if (copy.replayHeaders) copy.replayHeaders = Object.freeze([...copy.replayHeaders]);
  return Object.freeze(copy);
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
  return { engine: createIdempotency(withHandlerSettings(input, routeOf)), settings, shared: false };
}

function withHandlerSettings(
  options: IdempotencyOptions,
  routeOf: (request: EngineRequest) => Settings | undefined,
): IdempotencyOptions {
  return {
    ...options,
    required: perHandler('required', options.required ?? DEFAULTS.required, routeOf),
    leaseMs: perHandler('leaseMs', options.leaseMs ?? DEFAULTS.leaseMs, routeOf),
    retentionMs: perHandler('retentionMs', options.retentionMs ?? DEFAULTS.retentionMs, routeOf),
    wait: perHandler('wait', options.wait ?? 0, routeOf),
    replayHeaders: perHandler('replayHeaders', options.replayHeaders ?? NO_HEADERS, routeOf),
  };
}

const NO_HEADERS: readonly string[] = Object.freeze([]);

function perHandler<K extends Name>(
  name: K,
  fallback: PerRequest<NonNullable<Settings[K]>>,
  routeOf: (request: EngineRequest) => Settings | undefined,
): (request: EngineRequest) => NonNullable<Settings[K]> {
  type Value = NonNullable<Settings[K]>;
  const dynamic =
    typeof fallback === 'function' ? (fallback as (request: EngineRequest) => Value) : undefined;
  return function handlerOrModuleOption(request: EngineRequest): Value {
    const own = routeOf(request)?.[name];
    if (own !== undefined) return own as Value;
    return dynamic ? dynamic(request) : (fallback as Value);
  };
}
