import { IdempotencyConfigError } from './errors.js';
import { DEFAULTS, type IdempotencyOptions, type PerRequest } from './options.js';
import type { EngineRequest } from './request.js';

/**
 * What one route (a Fastify route's `config.idempotency`, a Nest handler's `@Idempotent()`) may
 * set for itself: the options the engine already takes per request. Anything not set follows
 * the options the adapter was given.
 */
export interface RouteSettings {
  /** A covered request without a key: 400 `missing-key` (true) or passed through (false). */
  required?: boolean;
  leaseMs?: number;
  retentionMs?: number;
  /** Hold a concurrent duplicate up to this long (true: 5 000 ms), then replay. */
  wait?: boolean | number;
  /** Response headers replayed in addition to the built-in allowlist. */
  replayHeaders?: readonly string[];
}

export const ROUTE_SETTING_NAMES = ['required', 'leaseMs', 'retentionMs', 'wait', 'replayHeaders'] as const;
type SettingName = (typeof ROUTE_SETTING_NAMES)[number];

/** How an adapter words a refusal, so the error names what the user wrote (`config.idempotency`, `@Idempotent()`). */
export interface SettingsWording {
  notAnObject: string;
  unknownName: (name: string, known: string) => string;
}

/**
 * Checks settings where they are declared (route registration, class definition), so a typo
 * fails at startup rather than being ignored; returns a frozen copy.
 */
export function checkedRouteSettings(value: unknown, wording: SettingsWording): RouteSettings {
  if (value === null || typeof value !== 'object') throw new IdempotencyConfigError(wording.notAnObject);
  for (const name of Object.keys(value)) {
    if (!(ROUTE_SETTING_NAMES as readonly string[]).includes(name)) {
      throw new IdempotencyConfigError(wording.unknownName(name, ROUTE_SETTING_NAMES.join(', ')));
    }
  }
  const copy = { ...(value as RouteSettings) };
  if (copy.replayHeaders) copy.replayHeaders = Object.freeze([...copy.replayHeaders]);
  return Object.freeze(copy);
}

/**
 * The adapter's options with the per-request ones made to consult the request's route first.
 * `routeOf` finds the settings of the route a request runs on (from `request.native`). The
 * engine still makes every decision; the route only supplies the value.
 */
export function withRouteSettings(
  options: IdempotencyOptions,
  routeOf: (request: EngineRequest) => RouteSettings | undefined,
): IdempotencyOptions {
  return {
    ...options,
    required: perRoute('required', options.required ?? DEFAULTS.required, routeOf),
    leaseMs: perRoute('leaseMs', options.leaseMs ?? DEFAULTS.leaseMs, routeOf),
    retentionMs: perRoute('retentionMs', options.retentionMs ?? DEFAULTS.retentionMs, routeOf),
    wait: perRoute('wait', options.wait ?? 0, routeOf),
    replayHeaders: perRoute('replayHeaders', options.replayHeaders ?? NO_HEADERS, routeOf),
  };
}

const NO_HEADERS: readonly string[] = Object.freeze([]);

function perRoute<K extends SettingName>(
  name: K,
  fallback: PerRequest<NonNullable<RouteSettings[K]>>,
  routeOf: (request: EngineRequest) => RouteSettings | undefined,
): (request: EngineRequest) => NonNullable<RouteSettings[K]> {
  type Value = NonNullable<RouteSettings[K]>;
  const dynamic =
    typeof fallback === 'function' ? (fallback as (request: EngineRequest) => Value) : undefined;
  return function routeOrAdapterOption(request: EngineRequest): Value {
    const own = routeOf(request)?.[name];
    if (own !== undefined) return own as Value;
    return dynamic ? dynamic(request) : (fallback as Value);
  };
}
