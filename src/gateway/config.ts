import { readFileSync } from 'node:fs';
import { ConfigError } from './config-error.js';
import { envName, FIELDS, flagName, fromText } from './config-fields.js';
import { type FileSettings, parseConfigFile } from './config-file.js';
import { GATEWAY_DEFAULTS, type GatewayConfig } from './types.js';

export { ConfigError } from './config-error.js';

/** Gateway flags as commander hands them over: camelCase names, text values. */
export type GatewayFlags = Readonly<Record<string, string | boolean | undefined>>;

export interface LoadGatewayConfigOptions {
  /** Parsed command-line flags (`--max-body 1mb` → `{ maxBody: '1mb' }`); `config` names the file. */
  flags: GatewayFlags;
  /** Usually `process.env`; only `IDEMKIT_*` names are read. */
  env: Readonly<Record<string, string | undefined>>;
  /** Reads the config file. @default fs.readFileSync(path, 'utf8') */
  readFile?: (path: string) => string;
}

/**
 * Merges the gateway's settings, field by field: flag > `IDEMKIT_<FLAG>` variable > config file
 * (`--config FILE` or `IDEMKIT_CONFIG`) > `GATEWAY_DEFAULTS`. Every value is validated where it
 * came from, so a `ConfigError` names the flag, variable or file key to fix.
 */
export function loadGatewayConfig({
  flags,
  env,
  readFile = (path) => readFileSync(path, 'utf8'),
}: LoadGatewayConfigOptions): GatewayConfig {
  const file = readSettingsFile(flags, env, readFile);
  const merged: Record<string, unknown> = {
    ...GATEWAY_DEFAULTS,
    replayHeaders: [],
    routes: file.routes ?? [],
  };
  /** Where each setting that was given came from, for messages about combinations. */
  const given = new Map<string, string>();
  for (const field of FIELDS) {
    const flag = field.flag === undefined ? undefined : flags[field.flag];
    const variable = nonEmpty(env[envName(field)]);
    if (flag !== undefined) {
      merged[field.key] = fromText(field, flag, flagName(field));
      given.set(field.key, flagName(field));
    } else if (variable !== undefined) {
      merged[field.key] = fromText(field, variable, envName(field));
      given.set(field.key, envName(field));
    } else if (file[field.key] !== undefined) {
      merged[field.key] = file[field.key];
      given.set(field.key, `"${field.key}" in the config file`);
    }
  }
  checkPrincipalSource(given);
  if (merged.upstream === undefined) {
    throw new ConfigError(
      'no upstream: pass --upstream http://127.0.0.1:8080 (or set IDEMKIT_UPSTREAM, or "upstream" in the config file)',
    );
  }
  return deepFreeze(merged as unknown as GatewayConfig);
}

/**
 * One principal source at a time: a header (the default), a cookie, or a verified JWT. Two would
 * leave it open which caller a request belongs to, so naming two is an error, not a precedence.
 */
function checkPrincipalSource(given: ReadonlyMap<string, string>): void {
  const sources = [['principalHeader'], ['principalCookie'], ['jwtJwks', 'jwtSecret']].flatMap((keys) => {
    const named = keys.filter((k) => given.has(k)).map((k) => given.get(k) as string);
    return named.length === 0 ? [] : [named.join(' and ')];
  });
  if (sources.length > 1) {
    throw new ConfigError(
      `${sources.join(' and ')} each choose where the principal comes from; keep one: a header (--principal-header), a cookie (--principal-cookie) or a JWT (--jwt-jwks and/or IDEMKIT_JWT_SECRET)`,
    );
  }
  const jwtKeys = given.has('jwtJwks') || given.has('jwtSecret');
  for (const key of ['jwtIssuer', 'jwtAudience', 'jwtHeader']) {
    const where = given.get(key);
    if (where !== undefined && !jwtKeys) {
      throw new ConfigError(
        `${where} only applies to JWTs: give the keys that verify them with --jwt-jwks <file or URL> or IDEMKIT_JWT_SECRET`,
      );
    }
  }
}

function readSettingsFile(
  flags: GatewayFlags,
  env: LoadGatewayConfigOptions['env'],
  readFile: (path: string) => string,
): FileSettings {
  const flag = flags.config;
  if (typeof flag === 'boolean')
    throw new ConfigError('--config needs a file name, e.g. --config idemkit.json');
  const path = flag ?? nonEmpty(env.IDEMKIT_CONFIG);
  if (path === undefined) return {};
  let text: string;
  try {
    text = readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (error as Error).message;
    const from = flag === undefined ? 'IDEMKIT_CONFIG' : '--config';
    throw new ConfigError(`${from}: cannot read config file ${path} (${why}); check the path`, {
      cause: error,
    });
  }
  return parseConfigFile(text, path);
}

// An empty variable (`IDEMKIT_PORT=` in a compose file) means "not set", not "set to nothing".
const nonEmpty = (value: string | undefined): string | undefined =>
  value === undefined || value.trim() === '' ? undefined : value;

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}
