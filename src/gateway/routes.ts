import { DEFAULTS } from '../core/options.js';
import { normalizePattern } from './path.js';
import type { GatewayConfig, GatewayRoute } from './types.js';

/** A route with everything resolved against the top-level settings. */
export interface ResolvedRoute {
  methods: ReadonlySet<string>;
  required: boolean;
  principalHeader: string;
  leaseMs: number;
  retentionMs: number;
  waitMs: number;
  /** The upstream honours the forwarded Idempotency-Key: an ambiguous failure may free the key. */
  upstreamDedupes: boolean;
  /** Top-level plus route replay headers; one array per route, so the engine caches its set. */
  replayHeaders: readonly string[];
}

/** `/orders/*` → `^/orders/.+$`; everything else matches literally. */
function compile(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.+');
  return new RegExp(`^${escaped}$`);
}

/**
 * First match wins; a request that matches no route gets the top-level settings. `path` is the
 * normalised path (`normalizeTarget`), never the raw request-target.
 */
export function createRouteMatcher(config: GatewayConfig): (method: string, path: string) => ResolvedRoute {
  const resolve = (route: Partial<GatewayRoute>): ResolvedRoute =>
    Object.freeze({
      methods: new Set((route.methods ?? DEFAULTS.methods).map((m) => m.toUpperCase())),
      required: route.required ?? DEFAULTS.required,
      principalHeader: (route.principalHeader ?? config.principalHeader).toLowerCase(),
      leaseMs: route.leaseMs ?? config.leaseMs,
      retentionMs: route.retentionMs ?? config.retentionMs,
      waitMs: route.waitMs ?? config.waitMs,
      upstreamDedupes: route.upstreamDedupes ?? config.upstreamDedupes,
      replayHeaders: Object.freeze([...config.replayHeaders, ...(route.replayHeaders ?? [])]),
    });
  const fallback = resolve({});
  const compiled = config.routes.map((route) => ({
    // Patterns are matched against normalised paths (path.ts), so they are normalised the same way.
    pattern: compile(normalizePattern(route.path, config)),
    // A rule that names methods applies to those methods only; without, to any method.
    appliesTo: route.methods ? new Set(route.methods.map((m) => m.toUpperCase())) : undefined,
    route: resolve(route),
  }));
  return function matchRoute(method: string, path: string): ResolvedRoute {
    for (const entry of compiled) {
      if (
        entry.pattern.test(path) &&
        (!entry.appliesTo || entry.appliesTo.has(method) || entry.appliesTo.size === 0)
      ) {
        return entry.route;
      }
    }
    return fallback;
  };
}

/** Every method any route covers: the engine's `methods`. */
export function coveredMethods(config: GatewayConfig): string[] {
  const all = new Set<string>(DEFAULTS.methods);
  for (const route of config.routes) for (const m of route.methods ?? []) all.add(m.toUpperCase());
  return [...all];
}
