import { createHmac, createSecretKey, type KeyObject, timingSafeEqual } from 'node:crypto';
import { canonicalJson, decodeUtf8 } from './canonical-json.js';
import { IdempotencyConfigError } from './errors.js';

/** A fingerprint secret with its version; records keep the version that made them. */
export interface VersionedSecret {
  version: number;
  key: string;
}

export interface FingerprintInput {
  method: string;
  path: string;
  /** The raw query string without `?`, or '' */
  query: string;
  contentType: string;
  /** Selected request headers (`fingerprintHeaders`), name → value. */
  headers: readonly [string, string][];
  body: Uint8Array;
}

export interface FingerprintOptions {
  excludeFields: readonly string[];
  /** 'canonical' hashes canonical JSON for JSON bodies; 'raw' always hashes the bytes. */
  bodyMode: 'canonical' | 'raw';
}

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json$/;

export function resolveSecrets(secret: string | readonly VersionedSecret[]): readonly VersionedSecret[] {
  const list = typeof secret === 'string' ? [{ version: 1, key: secret }] : [...secret];
  if (list.length === 0) throw new IdempotencyConfigError('secret: give at least one secret');
  for (const s of list) {
    if (!Number.isInteger(s.version) || s.version < 0) {
      throw new IdempotencyConfigError(`secret: version must be a non-negative integer, got ${s.version}`);
    }
    if (typeof s.key !== 'string' || s.key.length < 16) {
      throw new IdempotencyConfigError('secret: each key must be a string of at least 16 characters');
    }
  }
  // The highest version signs new records; every listed version still verifies old ones.
  return Object.freeze(list.sort((a, b) => b.version - a.version));
}

/**
 * HMAC-SHA-256 fingerprints (reliability.md §4.1 item 5). A plain hash at rest would let a
 * reader of the store guess low-entropy fields such as a PIN offline (S7); the server secret
 * prevents that. The material is built once per request; digests for older secret versions are
 * computed only when a record made with one turns up.
 */
export function createFingerprint(input: FingerprintInput, options: FingerprintOptions) {
  const material = buildMaterial(input, options);
  return {
    /** `<version>:<base64url HMAC>` with the given secret. */
    digest(secret: VersionedSecret): string {
      const hmac = createHmac('sha256', keyObjectOf(secret)).update(material.head).update(material.kind);
      return `${secret.version}:${hmac.update(material.body).digest('base64url')}`;
    },
  };
}

/** Constant-time comparison of a request against a stored fingerprint, by its secret version. */
export function fingerprintMatches(
  stored: string,
  fingerprint: { digest(secret: VersionedSecret): string },
  secrets: readonly VersionedSecret[],
): boolean {
  const version = Number(stored.slice(0, stored.indexOf(':')));
  const secret = secrets.find((s) => s.version === version);
  if (!secret) return false;
  const a = Buffer.from(stored);
  const b = Buffer.from(fingerprint.digest(secret));
  return a.length === b.length && timingSafeEqual(a, b);
}

interface Material {
  /** The request line and selected headers as a JSON array: an unambiguous, self-delimiting prefix. */
  head: string;
  /** `j` + canonical JSON, or `r` followed by the raw bytes. */
  kind: 'j' | 'r';
  body: string | Uint8Array;
}

function buildMaterial(input: FingerprintInput, options: FingerprintOptions): Material {
  const mediaType = input.contentType.split(';')[0]?.trim().toLowerCase() ?? '';
  const head = JSON.stringify([
    input.method,
    input.path,
    input.query,
    mediaType,
    ...input.headers.flatMap(([n, v]) => [n.toLowerCase(), v]),
  ]);
  if (options.bodyMode === 'canonical' && JSON_TYPE.test(mediaType) && input.body.byteLength > 0) {
    const text = decodeUtf8(input.body);
    const canonical = text === undefined ? undefined : canonicalJson(text, options.excludeFields);
    if (canonical !== undefined) return { head, kind: 'j', body: canonical };
  }
  return { head, kind: 'r', body: input.body };
}

const keyObjects = new WeakMap<VersionedSecret, KeyObject>();

/** HMAC keys are imported once per secret, not on every request. */
function keyObjectOf(secret: VersionedSecret): KeyObject {
  let key = keyObjects.get(secret);
  if (!key) {
    key = createSecretKey(Buffer.from(secret.key, 'utf8'));
    keyObjects.set(secret, key);
  }
  return key;
}
