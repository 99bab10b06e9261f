import { isUtf8 } from 'node:buffer';
import { createHmac, hash, timingSafeEqual } from 'node:crypto';
import { canonicalJson, decodeUtf8, isCanonicalJsonBytes } from './canonical-json.js';
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
 * HMAC-SHA-256 fingerprints (docs/guarantees.md). A plain hash at rest would let a
 * reader of the store guess low-entropy fields such as a PIN offline (S7); the server secret
 * prevents that. The material is built once per request; digests for older secret versions are
 * computed only when a record made with one turns up.
 */
export function createFingerprint(input: FingerprintInput, options: FingerprintOptions): Fingerprint {
  return new Fingerprint(buildMaterial(input, options));
}

export class Fingerprint {
  private readonly material: Material;

  constructor(material: Material) {
    this.material = material;
  }

  /** `<version>:<base64url HMAC>` with the given secret. */
  digest(secret: VersionedSecret): string {
    const { head, kind, body } = this.material;
    return `${secret.version}:${hmacSha256(padsOf(secret), head, kind, body)}`;
  }
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

export interface Material {
  /** The request line and selected headers as a JSON array: an unambiguous, self-delimiting prefix. */
  head: string;
  /** `j` + canonical JSON, or `r` followed by the raw bytes. */
  kind: 'j' | 'r';
  body: string | Uint8Array;
}

function buildMaterial(input: FingerprintInput, options: FingerprintOptions): Material {
  const mediaType = mediaTypeOf(input.contentType);
  const fields = [input.method, input.path, input.query, mediaType];
  for (const [name, value] of input.headers) fields.push(name.toLowerCase(), value);
  const head = JSON.stringify(fields);
  if (options.bodyMode === 'canonical' && JSON_TYPE.test(mediaType) && input.body.byteLength > 0) {
    // Already canonical (compact, sorted keys, as many clients send): its bytes are the canonical
    // text's UTF-8, so they are hashed as they are, with the same result as the full path.
    if (options.excludeFields.length === 0 && isUtf8(input.body) && isCanonicalJsonBytes(input.body)) {
      return { head, kind: 'j', body: input.body };
    }
    const text = decodeUtf8(input.body);
    const canonical = text === undefined ? undefined : canonicalJson(text, options.excludeFields);
    if (canonical !== undefined) return { head, kind: 'j', body: canonical };
  }
  return { head, kind: 'r', body: input.body };
}

/** `application/json; charset=utf-8` → `application/json`, without splitting into an array. */
function mediaTypeOf(contentType: string): string {
  const end = contentType.indexOf(';');
  return (end < 0 ? contentType : contentType.slice(0, end)).trim().toLowerCase();
}

/** The HMAC key blocks of a secret (RFC 2104): key XOR ipad and key XOR opad, 64 bytes each. */
interface Pads {
  inner: Buffer;
  outer: Buffer;
}

const BLOCK = 64;
const pads = new WeakMap<VersionedSecret, Pads>();

/** Derived once per secret, not on every request. */
function padsOf(secret: VersionedSecret): Pads {
  let found = pads.get(secret);
  if (!found) {
    let key = Buffer.from(secret.key, 'utf8');
    if (key.length > BLOCK) key = hash('sha256', key, 'buffer');
    const inner = Buffer.alloc(BLOCK, 0x36);
    const outer = Buffer.alloc(BLOCK + 32, 0x5c);
    for (let i = 0; i < key.length; i++) {
      inner[i] = (inner[i] as number) ^ (key[i] as number);
      outer[i] = (outer[i] as number) ^ (key[i] as number);
    }
    found = { inner, outer };
    pads.set(secret, found);
  }
  return found;
}

/** Messages up to this size are hashed from one reused buffer; larger ones stream through an Hmac. */
const SCRATCH_BYTES = 16 * 1024;
const scratch = Buffer.allocUnsafe(BLOCK + SCRATCH_BYTES);

/**
 * HMAC-SHA-256 over `head`, `kind` and `body`, base64url; the same bytes as
 * `createHmac('sha256', key).update(head).update(kind).update(body)`. Two one-shot
 * `crypto.hash` calls over the precomputed pads cost a third less than an Hmac object, which
 * the engine would otherwise build on every request.
 */
function hmacSha256(p: Pads, head: string, kind: string, body: string | Uint8Array): string {
  const bodyBytes = typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
  if (head.length * 3 + 1 + bodyBytes > SCRATCH_BYTES) {
    const key = Buffer.alloc(BLOCK);
    for (let i = 0; i < BLOCK; i++) key[i] = (p.inner[i] as number) ^ 0x36;
    return createHmac('sha256', key).update(head).update(kind).update(body).digest('base64url');
  }
  // Synchronous from here to the hash: no other request can touch the scratch buffer meanwhile.
  p.inner.copy(scratch, 0);
  let end = BLOCK + scratch.write(head, BLOCK);
  end += scratch.write(kind, end);
  if (typeof body === 'string') end += scratch.write(body, end);
  else {
    scratch.set(body, end);
    end += body.byteLength;
  }
  // The inner digest comes back as a 'binary' (latin1) string, one char per byte, and is written into the
  // outer pad's tail (room for it after its 64 bytes; also synchronous): asking for a Buffer
  // instead costs a Buffer allocation per request, more than the hash itself.
  const inner = hash('sha256', new Uint8Array(scratch.buffer, scratch.byteOffset, end), 'binary');
  p.outer.write(inner, BLOCK, 'binary');
  return hash('sha256', p.outer, 'base64url');
}
