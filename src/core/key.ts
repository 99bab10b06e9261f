/**
 * Idempotency-Key parsing.
 *
 * The IETF draft makes the key an RFC 8941 sf-string (`"abc"`), but clients send bare UUIDs,
 * which the RFC 8941 token form rejects (a token cannot start with a digit). So both forms are
 * accepted and mean the same key. After unquoting, a key is 1–255 characters of printable ASCII
 * 0x21–0x7E: RFC 8941 allows spaces inside strings, idemkit does not, so a key can never smuggle
 * whitespace into a log line or a header.
 */

export type KeyParseResult = { ok: true; key: string } | { ok: false; reason: string };

export const MAX_KEY_LENGTH = 255;

const PRINTABLE = /^[\x21-\x7e]+$/;
// A bare value must not contain what would make it ambiguous with an sf-string, a list or
// parameters.
const BARE_FORBIDDEN = /["\\,;]/;

/**
 * Parses the field value(s) of an Idempotency-Key header. `values` holds one entry per field
 * line; more than one line is a list and is rejected.
 */
export function parseIdempotencyKey(values: readonly string[], minKeyLength = 1): KeyParseResult {
  if (values.length !== 1) return { ok: false, reason: 'more than one Idempotency-Key field line' };
  return parseKeyLine(values[0] as string, minKeyLength);
}

/** Parses the one field line of an Idempotency-Key header. */
export function parseKeyLine(value: string, minKeyLength = 1): KeyParseResult {
  // The usual key (a UUID, a bare token) is checked in one pass with no regex and no copy.
  if (value.length >= minKeyLength && value.length <= MAX_KEY_LENGTH && isPlainBareKey(value)) {
    return { ok: true, key: value };
  }
  // RFC 9110 field values have optional surrounding whitespace (SP and HTAB only).
  const raw = value.replace(/^[ \t]+|[ \t]+$/g, '');
  if (raw.length === 0) return { ok: false, reason: 'the key is empty' };

  const unquoted = raw.startsWith('"') ? parseSfString(raw) : parseBare(raw);
  if (!unquoted.ok) return unquoted;
  const key = unquoted.key;
  if (key.length === 0) return { ok: false, reason: 'the key is empty' };
  if (key.length > MAX_KEY_LENGTH) {
    return { ok: false, reason: `the key is longer than ${MAX_KEY_LENGTH} characters` };
  }
  if (!PRINTABLE.test(key)) {
    return { ok: false, reason: 'the key must be printable ASCII without spaces (0x21-0x7E)' };
  }
  if (key.length < minKeyLength) {
    return { ok: false, reason: `the key is shorter than ${minKeyLength} characters` };
  }
  return { ok: true, key };
}

function parseBare(raw: string): KeyParseResult {
  if (BARE_FORBIDDEN.test(raw)) {
    return { ok: false, reason: 'a bare key may not contain a quote, backslash, comma or semicolon' };
  }
  return { ok: true, key: raw };
}

/** RFC 8941 §4.2.5: a quoted string with `\"` and `\\` escapes; nothing may follow it. */
function parseSfString(raw: string): KeyParseResult {
  let key = '';
  for (let i = 1; i < raw.length; i++) {
    const ch = raw[i] as string;
    if (ch === '\\') {
      const next = raw[i + 1];
      if (next !== '"' && next !== '\\') return { ok: false, reason: 'invalid escape in the quoted key' };
      key += next;
      i++;
    } else if (ch === '"') {
      if (i !== raw.length - 1) {
        return { ok: false, reason: 'parameters or a list after the quoted key are not accepted' };
      }
      return { ok: true, key };
    } else {
      key += ch;
    }
  }
  return { ok: false, reason: 'the quoted key has no closing quote' };
}

/** Printable ASCII 0x21–0x7E without `"`, `\\`, `,` or `;`: a bare key that needs no further work. */
function isPlainBareKey(value: string): boolean {
  if (value.length === 0) return false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x21 || c > 0x7e || c === 0x22 || c === 0x5c || c === 0x2c || c === 0x3b) return false;
  }
  return true;
}
