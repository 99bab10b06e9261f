import { randomUUID } from 'node:crypto';
import { ClientConfigError } from './errors.js';
import type { KeyCarrier } from './policy.js';

/** What the key is put into, before the first attempt. */
export interface KeyedParts {
  url: URL;
  headers: Headers;
  /** The buffered body; a body carrier needs the bytes. */
  body: Uint8Array | undefined;
}

/** 1–255 printable ASCII characters: what idemkit's server (and the IETF draft's sf-string) accepts. */
const VALID_KEY = /^[\x21-\x7e]{1,255}$/;

export function checkKey(key: string): string {
  if (!VALID_KEY.test(key)) {
    throw new ClientConfigError(
      `idempotencyKey must be 1–255 printable ASCII characters, got ${JSON.stringify(key)}`,
    );
  }
  return key;
}

/**
 * Puts the operation's key where its carrier says, once, so every attempt sends the same bytes.
 * A key the request already carries there (the caller wrote the header, the query parameter or
 * the body field itself) is the key; `given` (the call's `idempotencyKey`) must then agree.
 * Returns the key and the body with the key in it.
 */
export function placeKey(
  carrier: KeyCarrier,
  parts: KeyedParts,
  given: string | undefined,
): { key: string; body: Uint8Array | undefined } {
  const present = readKey(carrier, parts);
  if (present !== undefined && given !== undefined && present !== given) {
    throw new ClientConfigError(
      `the request carries the key ${JSON.stringify(present)} in its ${carrier.in} ${carrier.name}, and idempotencyKey says ${JSON.stringify(given)}`,
    );
  }
  const key = checkKey(present ?? given ?? randomUUID());
  if (present !== undefined) return { key, body: parts.body };
  switch (carrier.in) {
    case 'header':
      parts.headers.set(carrier.name, key);
      return { key, body: parts.body };
    case 'query':
      parts.url.searchParams.set(carrier.name, key);
      return { key, body: parts.body };
    case 'body':
      return { key, body: bodyWithKey(carrier.name, key, parts) };
  }
}

function readKey(carrier: KeyCarrier, parts: KeyedParts): string | undefined {
  if (carrier.in === 'header') return parts.headers.get(carrier.name) ?? undefined;
  if (carrier.in === 'query') return parts.url.searchParams.get(carrier.name) ?? undefined;
  if (!parts.body?.byteLength) return undefined;
  const text = new TextDecoder().decode(parts.body);
  if (isForm(parts.headers)) return new URLSearchParams(text).get(carrier.name) ?? undefined;
  const value = jsonObject(text)?.[carrier.name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string')
    throw new ClientConfigError(`the body field ${carrier.name} must be a string key`);
  return value;
}

/**
 * Adds the field to the body's text rather than re-serialising it, so the caller's bytes
 * (number spellings, large integers, key order) reach the server unchanged around the key.
 */
function bodyWithKey(name: string, key: string, parts: KeyedParts): Uint8Array {
  const text = parts.body?.byteLength ? new TextDecoder().decode(parts.body) : '';
  if (isForm(parts.headers)) {
    const field = new URLSearchParams({ [name]: key }).toString();
    return new TextEncoder().encode(text === '' ? field : `${text}&${field}`);
  }
  if (text === '') {
    if (!parts.headers.has('content-type')) parts.headers.set('content-type', 'application/json');
    return new TextEncoder().encode(JSON.stringify({ [name]: key }));
  }
  const object = jsonObject(text);
  if (object === undefined) {
    throw new ClientConfigError(
      `the key goes into the body field ${name}, so the body must be a JSON object or a form`,
    );
  }
  const open = text.indexOf('{');
  const field = `${JSON.stringify(name)}:${JSON.stringify(key)}`;
  const rest = text.slice(open + 1);
  const joined = Object.keys(object).length === 0 ? `${field}${rest}` : `${field},${rest}`;
  return new TextEncoder().encode(`${text.slice(0, open + 1)}${joined}`);
}

function isForm(headers: Headers): boolean {
  return /application\/x-www-form-urlencoded/i.test(headers.get('content-type') ?? '');
}

function jsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}
