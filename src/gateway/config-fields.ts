import { ConfigError } from './config-error.js';
import { invalidProxyEntry } from './forwarded.js';
import { parseStoreUrl } from './store-url-parse.js';
import type { GatewayConfig } from './types.js';
import { parseDuration, parseSize } from './units.js';

/*
 * Every gateway setting once: its flag, its IDEMKIT_* variable, its config-file key, how text and
 * JSON values turn into it, and what makes it valid. config.ts merges; this file decides.
 */

export type Kind =
  | 'upstream'
  | 'host'
  | 'port'
  | 'store'
  | 'secret'
  | 'header'
  | 'boolean'
  | 'duration'
  | 'duration0'
  | 'size'
  | 'size0'
  | 'headers'
  | 'cidrs'
  | 'forwardKey'
  | 'logLevel'
  | 'cookieName'
  | 'jwks'
  | 'jwtSecret'
  | 'text'
  | 'bodyField'
  | 'queryParam';

export interface Field {
  /** The key in GatewayConfig and in the JSON config file. */
  key: Exclude<keyof GatewayConfig, 'routes'>;
  /** commander's camelCase option name; absent for settings no flag may carry (the secret). */
  flag?: string;
  kind: Kind;
}

export const FIELDS: readonly Field[] = [
  { key: 'upstream', flag: 'upstream', kind: 'upstream' },
  { key: 'host', flag: 'host', kind: 'host' },
  { key: 'port', flag: 'port', kind: 'port' },
  { key: 'adminHost', flag: 'adminHost', kind: 'host' },
  { key: 'adminPort', flag: 'adminPort', kind: 'port' },
  { key: 'foldCase', flag: 'foldCase', kind: 'boolean' },
  { key: 'foldTrailingSlash', flag: 'foldTrailingSlash', kind: 'boolean' },
  { key: 'trustedProxies', flag: 'trustedProxies', kind: 'cidrs' },
  { key: 'headerTimeoutMs', flag: 'headerTimeout', kind: 'duration' },
  { key: 'requestTimeoutMs', flag: 'requestTimeout', kind: 'duration' },
  { key: 'idleTimeoutMs', flag: 'idleTimeout', kind: 'duration' },
  { key: 'store', flag: 'store', kind: 'store' },
  // No --secret: a flag shows in `ps` and in shell history.
  { key: 'secret', kind: 'secret' },
  // Principal sources: a header (the default), a cookie, or a verified JWT; one at a time (config.ts).
  { key: 'principalHeader', flag: 'principalHeader', kind: 'header' },
  { key: 'principalCookie', flag: 'principalCookie', kind: 'cookieName' },
  { key: 'jwtJwks', flag: 'jwtJwks', kind: 'jwks' },
  // No --jwt-secret, for the same reason as the fingerprint secret.
  { key: 'jwtSecret', kind: 'jwtSecret' },
  { key: 'jwtIssuer', flag: 'jwtIssuer', kind: 'text' },
  { key: 'jwtAudience', flag: 'jwtAudience', kind: 'text' },
  { key: 'jwtHeader', flag: 'jwtHeader', kind: 'header' },
  { key: 'allowAnonymous', flag: 'allowAnonymous', kind: 'boolean' },
  { key: 'otel', flag: 'otel', kind: 'boolean' },
  { key: 'tenantHeader', flag: 'tenantHeader', kind: 'header' },
  { key: 'keyBodyField', flag: 'keyBodyField', kind: 'bodyField' },
  { key: 'keyQueryParam', flag: 'keyQueryParam', kind: 'queryParam' },
  { key: 'leaseMs', flag: 'lease', kind: 'duration' },
  { key: 'retentionMs', flag: 'retention', kind: 'duration' },
  { key: 'waitMs', flag: 'wait', kind: 'duration0' },
  { key: 'maxBodyBytes', flag: 'maxBody', kind: 'size' },
  { key: 'maxStoredBytes', flag: 'maxStored', kind: 'size0' },
  { key: 'storeTimeoutMs', flag: 'storeTimeout', kind: 'duration' },
  { key: 'upstreamTimeoutMs', flag: 'upstreamTimeout', kind: 'duration' },
  { key: 'drainMs', flag: 'drain', kind: 'duration0' },
  { key: 'forwardKey', flag: 'forwardKey', kind: 'forwardKey' },
  { key: 'upstreamDedupes', flag: 'upstreamDedupes', kind: 'boolean' },
  { key: 'replayHeaders', flag: 'replayHeaders', kind: 'headers' },
  { key: 'logLevel', flag: 'logLevel', kind: 'logLevel' },
];

/** `maxBody` → `--max-body`; `secret` (no flag) → its variable. */
export const flagName = (field: Field): string =>
  `--${(field.flag ?? field.key).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** `maxBody` → `IDEMKIT_MAX_BODY`, `secret` → `IDEMKIT_SECRET`. */
export const envName = (field: Field): string =>
  `IDEMKIT_${(field.flag ?? field.key).replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

export const FORWARD_KEYS = ['derived', 'original', 'none'] as const;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'silent'] as const;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const BOOLEAN_TEXT: Readonly<Record<string, boolean>> = {
  true: true,
  '1': true,
  yes: true,
  false: false,
  '0': false,
  no: false,
};
const MIN_SECRET = 16;
// RFC 7518 §3.2: an HMAC key at least as long as the hash output (256 bits for HS256).
const MIN_JWT_SECRET = 32;

type Value = GatewayConfig[Field['key']];

/** A flag or environment value (always text; `--allow-anonymous` alone is `true`). */
export function fromText(field: Field, raw: string | boolean, source: string): Value {
  if (typeof raw === 'boolean') {
    if (field.kind === 'boolean') return raw;
    throw new ConfigError(`${source} needs a value`);
  }
  switch (field.kind) {
    case 'port': {
      if (!/^\d+$/.test(raw.trim())) throw new ConfigError(`${source}: "${raw}" is not a port; use 0–65535`);
      return check(field, Number(raw), source);
    }
    case 'boolean': {
      const value = BOOLEAN_TEXT[raw.trim().toLowerCase()];
      if (value === undefined) throw new ConfigError(`${source}: "${raw}" is not true or false`);
      return value;
    }
    case 'duration':
    case 'duration0':
      return check(field, parseDuration(raw, source), source);
    case 'size':
    case 'size0':
      return check(field, parseSize(raw, source), source);
    case 'headers':
    case 'cidrs':
      return check(
        field,
        raw
          .split(',')
          .map((h) => h.trim())
          .filter((h) => h !== ''),
        source,
      );
    default:
      return check(field, raw, source);
  }
}

/** A config-file value: numbers in the unit the key names, booleans, arrays of strings. */
export function fromJson(field: Field, value: unknown, source: string): Value {
  const expected = expectedJsonType(field.kind);
  const actual = Array.isArray(value) ? 'array' : typeof value;
  if (actual !== expected) {
    const unit = field.kind.startsWith('duration')
      ? ' of milliseconds, e.g. 30000'
      : field.kind.startsWith('size')
        ? ' of bytes, e.g. 1048576'
        : '';
    throw new ConfigError(
      `${source} must be a${expected === 'array' ? 'n' : ''} ${expected}${unit}, got ${JSON.stringify(value)}`,
    );
  }
  return check(field, value as Value, source);
}

function expectedJsonType(kind: Kind): 'string' | 'number' | 'boolean' | 'array' {
  if (kind === 'port' || kind.startsWith('duration') || kind.startsWith('size')) return 'number';
  if (kind === 'boolean') return 'boolean';
  if (kind === 'headers' || kind === 'cidrs') return 'array';
  return 'string';
}

/** Range and syntax checks shared by every source. */
export function check(field: Field, value: Value, source: string): Value {
  const fail = (what: string): never => {
    throw new ConfigError(`${source}: ${what}`);
  };
  switch (field.kind) {
    case 'upstream':
      return checkUpstream(value as string, fail);
    case 'host':
      if ((value as string).trim() === '') fail('give a host name or address, e.g. 127.0.0.1 or 0.0.0.0');
      return value;
    case 'port':
      if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 65_535)
        fail(`${value} is not a port; use 0–65535 (0 picks a free one)`);
      return value;
    case 'store':
      parseStoreUrl(value as string, source);
      return value;
    case 'secret':
      if ((value as string).length < MIN_SECRET) {
        fail(
          `the secret is ${(value as string).length} characters; use at least ${MIN_SECRET} random ones, e.g. $(openssl rand -base64 32)`,
        );
      }
      return value;
    case 'header':
      if (!TOKEN.test(value as string)) fail(`"${value}" is not a header name`);
      return (value as string).toLowerCase();
    case 'headers':
      return checkHeaderList(value as unknown[], fail);
    case 'cidrs':
      return (value as unknown[]).map((entry) => {
        const why =
          typeof entry === 'string'
            ? invalidProxyEntry(entry.trim())
            : `${JSON.stringify(entry)} is not text`;
        return why === undefined ? (entry as string).trim() : fail(`${why}; use e.g. 10.0.0.0/8,127.0.0.1`);
      });
    case 'duration':
    case 'size':
      if (!Number.isSafeInteger(value) || (value as number) < 1)
        fail(`must be a positive whole number, got ${value}`);
      return value;
    case 'duration0':
    case 'size0':
      if (!Number.isSafeInteger(value) || (value as number) < 0)
        fail(`must be 0 or a positive whole number, got ${value}`);
      return value;
    case 'forwardKey':
      return oneOf(value, FORWARD_KEYS, fail);
    case 'logLevel':
      return oneOf(value, LOG_LEVELS, fail);
    case 'boolean':
      return value;
    case 'cookieName':
      // Cookie names are case-sensitive (RFC 6265 §4.1.1), so unlike header names they keep their case.
      if (!TOKEN.test(value as string)) fail(`"${value}" is not a cookie name`);
      return value;
    case 'jwks':
      return checkJwks(value as string, fail);
    case 'jwtSecret':
      if ((value as string).length < MIN_JWT_SECRET) {
        fail(
          `the JWT secret is ${(value as string).length} characters; HS256 needs at least ${MIN_JWT_SECRET} (RFC 7518 §3.2)`,
        );
      }
      return value;
    case 'text':
      if ((value as string).trim() === '') fail('must not be empty');
      return value;
    case 'bodyField':
      if (!/^[^\s.]+$/.test(value as string))
        fail(`"${value}" is not a top-level JSON field name such as request_id (nested paths are not read)`);
      return value;
    case 'queryParam':
      if (!/^[^\s&=#]+$/.test(value as string))
        fail(`"${value}" is not a query parameter name such as ClientToken`);
      return value;
  }
}

/** A JWKS file path, or an http(s) URL the keys are fetched (and cached) from. */
function checkJwks(value: string, fail: (what: string) => never): string {
  if (value.trim() === '') fail('give a JWKS file path or an https:// URL');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    let url: URL | undefined;
    try {
      url = new URL(value);
    } catch {
      fail(`"${value}" is not a URL`);
    }
    if (url?.protocol !== 'http:' && url?.protocol !== 'https:')
      fail(`"${value}": use a file path or an http:// or https:// URL`);
  }
  return value;
}

function checkUpstream(value: string, fail: (what: string) => never): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return fail(`"${value}" is not a URL; use e.g. http://127.0.0.1:8080`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    fail(`"${value}" must be an http:// or https:// URL`);
  if (url.search || url.hash) fail(`"${value}" must not have a query or fragment; requests keep their own`);
  if (url.username || url.password) fail(`"${value}" must not carry credentials; clients send their own`);
  return value;
}

function checkHeaderList(value: unknown[], fail: (what: string) => never): string[] {
  return value.map((name) => {
    if (typeof name !== 'string' || !TOKEN.test(name)) fail(`${JSON.stringify(name)} is not a header name`);
    const lower = (name as string).toLowerCase();
    if (lower === 'set-cookie' || lower === 'authorization' || lower === 'cookie') {
      fail(`${lower} is never replayed: a replay must not hand one client's credentials to another`);
    }
    return lower;
  });
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[], fail: (what: string) => never): T {
  if (!allowed.includes(value as T)) fail(`"${String(value)}" is not one of ${allowed.join(', ')}`);
  return value as T;
}
