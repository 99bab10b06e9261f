import { IdempotencyConfigError } from '../core/errors.js';
import { DEFAULTS, type IdempotencyOptions, type PerRequest } from '../core/options.js';
import type { EngineRequest } from '../core/request.js';

/**
 * `config.idempotency` on a Fastify route: `false` leaves the route uncovered; an object sets,
 * for this route, the options the engine already takes per request. Anything not set follows
 * the plugin's options.
 * @example
 * app.post('/refunds', { config: { idempotency: { required: false, wait: true } } }, handler)
 */
export type IdempotencyRouteConfig =
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

export type RouteSettings = Exclude<IdempotencyRouteConfig, false>;

const SETTINGS = ['required', 'leaseMs', 'retentionMs', 'wait', 'replayHeaders'] as const;
type SettingName = (typeof SETTINGS)[number];

/** Reads a route's config once, when the route is registered: unknown names are refused there. */
export function routeSettingsOf(
  config: { idempotency?: unknown } | undefined,
  route: string,
  sharedEngine: boolean,
): RouteSettings | false | undefined {
  const value = config?.idempotency;
  if (value === undefined || value === false) return value;
  if (value === null || typeof value !== 'object') {
    throw new IdempotencyConfigError(`${route}: config.idempotency must be false or an object`);
  }
  const names = Object.keys(value);
  for (const name of names) {
    if (!(SETTINGS as readonly string[]).includes(name)) {
      throw new IdempotencyConfigError(
        `${route}: config.idempotency.${name} is not a per-route option (${SETTINGS.join(', ')})`,
      );
    }
  }
  if (sharedEngine && names.length > 0) {
    throw new IdempotencyConfigError(
      `${route}: config.idempotency sets ${names.join(', ')}, but the plugin was given a shared engine whose options are fixed; pass options to the plugin instead`,
    );
  }
  const settings = { ...(value as RouteSettings) };
  if (settings.replayHeaders) settings.replayHeaders = Object.freeze([...settings.replayHeaders]);
  return Object.freeze(settings);
}

/**
 * The plugin's options with the per-request ones made to consult the route first. `routeOf`
 * finds the settings of the route a request runs on (from `request.native`, the Fastify
 * request). The engine still makes every decision; the route only supplies the value.
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
  return function routeOrPluginOption(request: EngineRequest): Value {
    const own = routeOf(request)?.[name];
    if (own !== undefined) return own as Value;
    return dynamic ? dynamic(request) : (fallback as Value);
  };
}
