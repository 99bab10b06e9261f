import fc from 'fast-check';

/*
 * The Idempotency-Key rules of docs/guarantees.md (T5, S6), written out again here so the fuzz
 * tests judge idemkit by the rules and not by its own parser (src/core/key.ts is never called):
 *
 * - exactly one field line; leading and trailing SP/HTAB are not part of the value;
 * - either an RFC 8941 sf-string (`"abc"`, escapes `\"` and `\\` only, nothing after the closing
 *   quote) or a bare value holding none of `"` `\` `,` `;`;
 * - after unquoting, 1–255 characters, each printable ASCII 0x21–0x7E, and at least
 *   `minKeyLength` of them.
 */

/** The key the rules accept for these field lines, or `undefined` when they demand 400 invalid-key. */
export function keyOracle(lines: readonly string[], minKeyLength = 1): string | undefined {
  if (lines.length !== 1) return undefined;
  const raw = trimOws(lines[0] as string);
  let key = '';
  if (raw.startsWith('"')) {
    let closed = false;
    for (let i = 1; i < raw.length; i++) {
      const ch = raw[i] as string;
      if (closed) return undefined; // anything after the closing quote: parameters, a list
      if (ch === '\\') {
        const next = raw[i + 1];
        if (next !== '"' && next !== '\\') return undefined;
        key += next;
        i++;
      } else if (ch === '"') closed = true;
      else key += ch;
    }
    if (!closed) return undefined;
  } else {
    for (const ch of raw) if (ch === '"' || ch === '\\' || ch === ',' || ch === ';') return undefined;
    key = raw;
  }
  if (key.length < Math.max(1, minKeyLength) || key.length > 255) return undefined;
  for (let i = 0; i < key.length; i++) {
    const code = key.charCodeAt(i);
    if (code < 0x21 || code > 0x7e) return undefined;
  }
  return key;
}

/** RFC 9110 §5.5: optional whitespace around a field value is SP and HTAB, nothing else. */
export function trimOws(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && (value[start] === ' ' || value[start] === '\t')) start++;
  while (end > start && (value[end - 1] === ' ' || value[end - 1] === '\t')) end--;
  return value.slice(start, end);
}

/**
 * Whether an HTTP/1.1 server may refuse these header bytes before any application sees them:
 * RFC 9110 §5.5 allows VCHAR, obs-text (0x80–0xFF), SP and HTAB in a field value; any other
 * control byte (NUL, 0x01–0x1F, DEL) makes the message malformed.
 */
export function outsideFieldGrammar(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if ((code < 0x20 && code !== 0x09) || code === 0x7f || code > 0xff) return true;
  }
  return false;
}

/** The sf-string form of a key: the same key, quoted. */
export function quoted(key: string): string {
  return `"${key.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

const printableUnit = fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c));
const tricky = fc.constantFrom(
  ' ',
  '\t',
  '"',
  '\\',
  ',',
  ';',
  '=',
  '\0',
  '\r',
  '\n',
  '\x01',
  '\x1f',
  '\x7f',
  '\x80',
  '\xa0',
  '\xff',
  'é',
  '€',
  '😀',
  'a',
  'Z',
  '0',
  '-',
  '~',
  '*',
);
/** A string of `length` printable characters, sometimes with escapes that unquote to fewer. */
const lengthAround255 = fc
  .tuple(fc.integer({ min: 250, max: 260 }), fc.constantFrom('bare', 'quoted', 'escaped'))
  .map(([n, form]) => {
    if (form === 'bare') return 'k'.repeat(n);
    if (form === 'quoted') return `"${'k'.repeat(n)}"`;
    // n unquoted characters, two of them escaped: the raw value is two longer than the key.
    return `"\\"${'k'.repeat(n - 2)}\\\\"`;
  });

/** One field value: valid and invalid keys in roughly equal measure, with the edge cases dense. */
export const keyText: fc.Arbitrary<string> = fc.oneof(
  fc.uuid(),
  fc.string({ unit: printableUnit, minLength: 1, maxLength: 40 }),
  fc.string({ unit: 'grapheme-ascii', maxLength: 40 }),
  fc.string({ unit: tricky, maxLength: 12 }),
  fc.string({ unit: fc.oneof(printableUnit, tricky), maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  // sf-strings, with and without (valid and invalid) escapes
  fc
    .string({ unit: fc.constantFrom('a', 'b', '"', '\\', ' '), minLength: 0, maxLength: 8 })
    .map((s) => `"${s}"`),
  fc.string({ unit: printableUnit, minLength: 1, maxLength: 20 }).map(quoted),
  lengthAround255,
  // sf parameters, lists, an unterminated quote, surrounding whitespace
  fc
    .tuple(fc.uuid(), fc.constantFrom(';a=1', ', x', ',', '"', ' ', '\t', ' \t', '";a', '=', ' y'))
    .map(([u, tail]) => u + tail),
  fc.tuple(fc.uuid(), fc.constantFrom('"', ' ', '\t', ' "')).map(([u, head]) => head + u),
  fc.uuid().map((u) => `"${u}";a=1`),
  fc.uuid().map((u) => `"${u}", "${u}"`),
);

/** The field lines of one request: usually one, sometimes several (always invalid), or none sent empty. */
export const keyFieldLines: fc.Arbitrary<string[]> = fc.oneof(
  { weight: 10, arbitrary: keyText.map((k) => [k]) },
  { weight: 1, arbitrary: fc.array(fc.uuid(), { minLength: 2, maxLength: 3 }) },
  { weight: 1, arbitrary: fc.array(keyText, { minLength: 2, maxLength: 3 }) },
);
