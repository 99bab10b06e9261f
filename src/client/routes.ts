import { ClientConfigError } from './errors.js';
import { type PolicyInput, type RetryPolicy, resolvePolicy } from './policy.js';

/** A per-route override: the first rule whose method and path match decides the policy. */
export interface RouteRule {
  /** One method or several; every method when absent. */
  method?: string | readonly string[];
  /**
   * A path relative to `baseUrl`: exact (`/charges`), with OpenAPI parameters
   * (`/charges/{id}`, one segment each) or with a trailing `*` (`/orders/*`, anything below).
   */
  path: string;
  policy: PolicyInput;
}

export interface CompiledRoute {
  methods: ReadonlySet<string> | undefined;
  template: string;
  policy: RetryPolicy;
  /** Matches with path parameters confined to one segment. */
  strict: RegExp;
  /**
   * Matches with a parameter spanning segments, as Google's APIs use them (`/v1/{parent}/hubs`
   * for `/v1/projects/p/locations/l/hubs`); tried only when no strict pattern matched.
   */
  loose: RegExp;
  /** Literal characters: among several matches the most specific template wins. */
  weight: number;
}

export function compileRoute(
  methods: string | readonly string[] | undefined,
  template: string,
  policy: RetryPolicy,
): CompiledRoute {
  if (typeof template !== 'string' || !template.startsWith('/')) {
    throw new ClientConfigError(`route path must start with '/', got ${JSON.stringify(template)}`);
  }
  const list = methods === undefined ? undefined : typeof methods === 'string' ? [methods] : methods;
  const wildcard = template.endsWith('/*');
  const body = wildcard ? template.slice(0, -2) : template;
  const parts = body.split(/(\{[^}]+\})/);
  const literal = parts.filter((part) => !part.startsWith('{')).join('');
  const pattern = (param: string) =>
    parts.map((part) => (part.startsWith('{') ? param : escapeRegExp(part))).join('');
  const tail = wildcard ? '(?:/.*)?' : '/?';
  return {
    methods: list === undefined ? undefined : new Set(list.map((m) => m.toUpperCase())),
    template,
    policy,
    strict: new RegExp(`^${pattern('[^/]+')}${tail}$`),
    loose: new RegExp(`^${pattern('.+')}${tail}$`),
    weight: literal.length,
  };
}

export function compileRules(rules: readonly RouteRule[]): CompiledRoute[] {
  return rules.map((rule, i) =>
    compileRoute(rule.method, rule.path, resolvePolicy(rule.policy, `routes[${i}] (${rule.path})`)),
  );
}

/** First matching rule, in order: how per-route overrides read. */
export function firstMatch(
  routes: readonly CompiledRoute[],
  method: string,
  path: string,
): CompiledRoute | undefined {
  return routes.find((route) => allows(route, method) && route.strict.test(path));
}

/**
 * The most specific matching operation, strict matches before loose ones: how operations of an
 * OpenAPI document, which has no order, are found (`/payments/details` before `/payments/{id}`).
 */
export function bestMatch(
  routes: readonly CompiledRoute[],
  method: string,
  path: string,
): CompiledRoute | undefined {
  for (const test of ['strict', 'loose'] as const) {
    let best: CompiledRoute | undefined;
    for (const route of routes) {
      if (allows(route, method) && route[test].test(path) && (!best || route.weight > best.weight))
        best = route;
    }
    if (best) return best;
  }
  return undefined;
}

function allows(route: CompiledRoute, method: string): boolean {
  return route.methods === undefined || route.methods.has(method);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
