import { IdempotencyConfigError } from '../core/errors.js';
import { checkedRouteSettings, type RouteSettings } from '../core/route-settings.js';

export type { RouteSettings } from '../core/route-settings.js';
export { withRouteSettings } from '../core/route-settings.js';

/**
 * `config.idempotency` on a Fastify route: `false` leaves the route uncovered; an object sets,
 * for this route, the options the engine already takes per request (core/route-settings.ts).
 * Anything not set follows the plugin's options.
 * @example
 * app.post('/refunds', { config: { idempotency: { required: false, wait: true } } }, handler)
 */
export type IdempotencyRouteConfig = false | RouteSettings;

/** Reads a route's config once, when the route is registered: unknown names are refused there. */
export function routeSettingsOf(
  config: { idempotency?: unknown } | undefined,
  route: string,
  sharedEngine: boolean,
): RouteSettings | false | undefined {
  const value = config?.idempotency;
  if (value === undefined || value === false) return value;
  const settings = checkedRouteSettings(value, {
    notAnObject: `${route}: config.idempotency must be false or an object`,
    unknownName: (name, known) => `${route}: config.idempotency.${name} is not a per-route option (${known})`,
  });
  const names = Object.keys(settings);
  if (sharedEngine && names.length > 0) {
    throw new IdempotencyConfigError(
      `${route}: config.idempotency sets ${names.join(', ')}, but the plugin was given a shared engine whose options are fixed; pass options to the plugin instead`,
    );
  }
  return settings;
}
