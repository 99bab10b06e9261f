import { ConfigError } from './config-error.js';
import { FIELDS, type Field, fromJson } from './config-fields.js';
import type { GatewayConfig, GatewayRoute } from './types.js';

/*
 * The JSON config file: the same settings as the flags with the unit in the key (`leaseMs`,
 * `maxBodyBytes`), plus `routes`. Unknown keys are errors: a typo such as `lease` for `leaseMs`
 * would otherwise run the gateway with a default nobody chose.
 */

export type FileSettings = Partial<Omit<GatewayConfig, 'routes'>> & { routes?: GatewayRoute[] };

const ROUTE_KEYS = [
  'path',
  'methods',
  'required',
  'principalHeader',
  'leaseMs',
  'retentionMs',
  'waitMs',
  'upstreamDedupes',
  'replayHeaders',
] as const;
const METHOD = /^[A-Za-z]+$/;

export function parseConfigFile(text: string, file: string): FileSettings {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`config file ${file} is not valid JSON: ${(error as Error).message}`);
  }
  if (!isObject(json))
    throw new ConfigError(
      `config file ${file} must hold a JSON object, e.g. { "upstream": "http://127.0.0.1:8080" }`,
    );

  const byKey = new Map(FIELDS.map((f) => [f.key as string, f]));
  const known = [...byKey.keys(), 'routes', '$schema'];
  const settings: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(json)) {
    const source = `config file ${file}: ${key}`;
    if (key === '$schema') continue;
    if (key === 'routes') settings.routes = parseRoutes(value, `config file ${file}: routes`);
    else if (byKey.has(key)) settings[key] = fromJson(byKey.get(key) as Field, value, source);
    else
      throw new ConfigError(
        `config file ${file}: unknown key "${key}"${suggest(key, known)}; known keys: ${known.slice(0, -1).join(', ')}`,
      );
  }
  return settings as FileSettings;
}

function parseRoutes(value: unknown, source: string): GatewayRoute[] {
  if (!Array.isArray(value)) throw new ConfigError(`${source} must be an array of { "path": "/charges", … }`);
  return value.map((entry, i) => parseRoute(entry, `${source}[${i}]`));
}

function parseRoute(entry: unknown, source: string): GatewayRoute {
  if (!isObject(entry)) throw new ConfigError(`${source} must be an object such as { "path": "/charges" }`);
  for (const key of Object.keys(entry)) {
    if (key === 'onUpstreamFailure') {
      throw new ConfigError(
        `${source}: "onUpstreamFailure" was replaced by "upstreamDedupes": an upstream failure that may have run the request now holds the key unless "upstreamDedupes": true says the upstream de-duplicates on the forwarded Idempotency-Key`,
      );
    }
    if (!(ROUTE_KEYS as readonly string[]).includes(key)) {
      throw new ConfigError(
        `${source}: unknown key "${key}"${suggest(key, ROUTE_KEYS)}; route keys: ${ROUTE_KEYS.join(', ')}`,
      );
    }
  }
  const route: GatewayRoute = { path: checkPattern(entry.path, `${source}.path`) };
  if (entry.methods !== undefined) route.methods = checkMethods(entry.methods, `${source}.methods`);
  if (entry.required !== undefined) route.required = boolean(entry.required, `${source}.required`);
  if (entry.principalHeader !== undefined)
    route.principalHeader = field('principalHeader', entry.principalHeader, source) as string;
  for (const key of ['leaseMs', 'retentionMs', 'waitMs'] as const) {
    if (entry[key] !== undefined) route[key] = field(key, entry[key], source) as number;
  }
  if (entry.replayHeaders !== undefined) {
    route.replayHeaders = field('replayHeaders', entry.replayHeaders, source) as string[];
  }
  if (entry.upstreamDedupes !== undefined) {
    route.upstreamDedupes = boolean(entry.upstreamDedupes, `${source}.upstreamDedupes`);
  }
  return route;
}

function field(key: Field['key'], value: unknown, source: string): unknown {
  return fromJson(FIELDS.find((f) => f.key === key) as Field, value, `${source}.${key}`);
}

/** `/charges`, `/orders/*`: a path from the root, `*` for one or more characters, no query. */
function checkPattern(value: unknown, source: string): string {
  if (typeof value !== 'string')
    throw new ConfigError(`${source} is required: a path pattern such as "/charges" or "/orders/*"`);
  if (!value.startsWith('/')) throw new ConfigError(`${source}: "${value}" must start with /`);
  if (/[\s?#]/.test(value))
    throw new ConfigError(`${source}: "${value}" must be a path without spaces, query or fragment`);
  if (value.includes('**'))
    throw new ConfigError(`${source}: "${value}": one * already matches any run of characters`);
  return value;
}

function checkMethods(value: unknown, source: string): string[] {
  if (!Array.isArray(value))
    throw new ConfigError(
      `${source} must be an array such as ["POST", "PATCH"] ([] passes the route through)`,
    );
  return value.map((m) => {
    if (typeof m !== 'string' || !METHOD.test(m))
      throw new ConfigError(`${source}: ${JSON.stringify(m)} is not an HTTP method`);
    return m.toUpperCase();
  });
}

function boolean(value: unknown, source: string): boolean {
  if (typeof value !== 'boolean')
    throw new ConfigError(`${source} must be true or false, got ${JSON.stringify(value)}`);
  return value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Keys of earlier versions, and what replaced them. */
const REPLACED: Readonly<Record<string, string>> = {
  requirePrincipal:
    ' (replaced by "allowAnonymous": keyed requests without a principal are refused unless allowAnonymous is true)',
};

/** `lease` → ` (did you mean "leaseMs"?)`. */
function suggest(key: string, known: readonly string[]): string {
  if (Object.hasOwn(REPLACED, key) && known.includes('allowAnonymous')) return REPLACED[key] as string;
  const lower = key.toLowerCase().replace(/[-_]/g, '');
  const hit = known.find((k) => {
    const kl = k.toLowerCase();
    return (
      kl === lower ||
      kl === `${lower}ms` ||
      kl === `${lower}bytes` ||
      kl.startsWith(lower) ||
      lower.startsWith(kl)
    );
  });
  return hit ? ` (did you mean "${hit}"?)` : '';
}
