/**
 * Canonical JSON for fingerprints: object keys sorted, insignificant whitespace dropped, string
 * escapes normalised, and numbers kept as their exact source text. `JSON.parse` would round
 * 12345678901234567890 and 12345678901234567891 to the same double, and two different payment
 * amounts would then share a fingerprint; keeping the text avoids that.
 *
 * Returns `undefined` for anything that is not strict JSON, nested deeper than MAX_DEPTH, or has
 * duplicate keys (ambiguous: parsers disagree on which one wins); the caller then hashes the raw
 * bytes, which is always safe.
 */

const MAX_DEPTH = 128;

type Node =
  | { t: 'lit'; text: string }
  | { t: 'arr'; items: Node[] }
  | { t: 'obj'; entries: Map<string, Node> };

class NotCanonical extends Error {}

export function canonicalJson(text: string, excludeFields: readonly string[] = []): string | undefined {
  try {
    // Nothing to leave out (the usual case): one pass that writes the canonical text directly.
    if (excludeFields.length === 0) return new Canonicalizer(text).document();
    const parser = new Parser(text);
    const root = parser.parseDocument();
    for (const path of excludeFields) removePath(root, path.split('.'));
    return serialize(root);
  } catch (error) {
    if (error instanceof NotCanonical) return undefined;
    throw error;
  }
}

// One decoder for every request. Fatal, because a lenient decode turns each invalid byte into
// U+FFFD and two different bodies would read alike; ignoreBOM keeps a leading BOM as text, which
// the parser refuses, so a body with a BOM is compared by its bytes.
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The bytes as text, or `undefined` when they are not valid UTF-8 (and so not JSON, RFC 8259 §8.1). */
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return STRICT_UTF8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** A top-level field as a key carrier sees it. */
export type JsonField = { present: false } | { present: true; value: string | undefined };

/**
 * Reads a top-level field (the AIP-155 `request_id` carrier) from strict JSON. `value` is
 * `undefined` when the field is present but not a string; a text that is not strict JSON, or not
 * an object, has no fields.
 */
export function readJsonField(text: string, field: string): JsonField {
  try {
    const root = new Parser(text).parseDocument();
    if (root.t !== 'obj') return { present: false };
    const node = root.entries.get(field);
    if (!node) return { present: false };
    const isString = node.t === 'lit' && node.text.startsWith('"');
    return { present: true, value: isString ? (JSON.parse(node.text) as string) : undefined };
  } catch (error) {
    if (error instanceof NotCanonical) return { present: false };
    throw error;
  }
}

function removePath(node: Node, path: string[]): void {
  if (node.t !== 'obj' || path.length === 0) return;
  const [head, ...rest] = path as [string, ...string[]];
  if (rest.length === 0) node.entries.delete(head);
  else {
    const child = node.entries.get(head);
    if (child) removePath(child, rest);
  }
}

function serialize(node: Node): string {
  switch (node.t) {
    case 'lit':
      return node.text;
    case 'arr':
      return `[${node.items.map(serialize).join(',')}]`;
    case 'obj': {
      const keys = [...node.entries.keys()].sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${serialize(node.entries.get(k) as Node)}`).join(',')}}`;
    }
  }
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
// biome-ignore lint/suspicious/noControlCharactersInRegex: JSON forbids raw control characters in strings (RFC 8259 §7)
const STRING = /"(?:[^"\\\u0000-\u001f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"/y;

class Parser {
  private pos = 0;
  private readonly text: string;

  constructor(text: string) {
    this.text = text;
  }

  parseDocument(): Node {
    const node = this.value(0);
    this.ws();
    if (this.pos !== this.text.length) throw new NotCanonical();
    return node;
  }

  private ws(): void {
    while (this.pos < this.text.length) {
      const c = this.text.charCodeAt(this.pos);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      this.pos++;
    }
  }

  private value(depth: number): Node {
    if (depth > MAX_DEPTH) throw new NotCanonical();
    this.ws();
    const c = this.text[this.pos];
    if (c === '{') return this.object(depth);
    if (c === '[') return this.array(depth);
    if (c === '"') return { t: 'lit', text: JSON.stringify(this.string()) };
    for (const word of ['true', 'false', 'null']) {
      if (this.text.startsWith(word, this.pos)) {
        this.pos += word.length;
        return { t: 'lit', text: word };
      }
    }
    return { t: 'lit', text: this.match(NUMBER) };
  }

  private string(): string {
    return JSON.parse(this.match(STRING)) as string;
  }

  private match(pattern: RegExp): string {
    pattern.lastIndex = this.pos;
    const m = pattern.exec(this.text);
    if (!m) throw new NotCanonical();
    this.pos += m[0].length;
    return m[0];
  }

  private object(depth: number): Node {
    this.pos++;
    const entries = new Map<string, Node>();
    this.ws();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return { t: 'obj', entries };
    }
    for (;;) {
      this.ws();
      if (this.text[this.pos] !== '"') throw new NotCanonical();
      const key = this.string();
      this.ws();
      if (this.text[this.pos++] !== ':') throw new NotCanonical();
      if (entries.has(key)) throw new NotCanonical();
      entries.set(key, this.value(depth + 1));
      this.ws();
      const next = this.text[this.pos++];
      if (next === '}') return { t: 'obj', entries };
      if (next !== ',') throw new NotCanonical();
    }
  }

  private array(depth: number): Node {
    this.pos++;
    const items: Node[] = [];
    this.ws();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return { t: 'arr', items };
    }
    for (;;) {
      items.push(this.value(depth + 1));
      this.ws();
      const next = this.text[this.pos++];
      if (next === ']') return { t: 'arr', items };
      if (next !== ',') throw new NotCanonical();
    }
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Canonical JSON in one pass, without a tree: the same output as `serialize(Parser…)`, and the
 * same refusals. Scalars are copied from the source when their text is already canonical (a
 * string without escapes, a number, a literal); an object whose keys arrive sorted is joined in
 * order, and only an unsorted one is sorted. Object keys compare as UTF-16 code units, like
 * `Array.prototype.sort`, which is what stored fingerprints were made with.
 */
class Canonicalizer {
  private pos = 0;
  private readonly text: string;
  /** The decoded text of the last string scanned (object keys need it for order and duplicates). */
  private decoded = '';

  constructor(text: string) {
    this.text = text;
  }

  document(): string {
    const out = this.value(0);
    this.ws();
    if (this.pos !== this.text.length) throw new NotCanonical();
    return out;
  }

  private ws(): void {
    const text = this.text;
    let pos = this.pos;
    while (pos < text.length) {
      const c = text.charCodeAt(pos);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      pos++;
    }
    this.pos = pos;
  }

  private value(depth: number): string {
    if (depth > MAX_DEPTH) throw new NotCanonical();
    this.ws();
    const c = this.text.charCodeAt(this.pos);
    if (c === 0x7b) return this.object(depth);
    if (c === 0x5b) return this.array(depth);
    if (c === QUOTE) return this.string();
    for (const word of LITERALS) {
      if (this.text.startsWith(word, this.pos)) {
        this.pos += word.length;
        return word;
      }
    }
    return this.number();
  }

  /** A string literal in canonical form; its decoded value is left in `decoded`. */
  private string(): string {
    const text = this.text;
    const start = this.pos;
    let pos = start + 1;
    let plain = true;
    for (;;) {
      if (pos >= text.length) throw new NotCanonical();
      const c = text.charCodeAt(pos);
      if (c === QUOTE) break;
      if (c < 0x20) throw new NotCanonical();
      if (c === BACKSLASH) {
        plain = false;
        const e = text.charCodeAt(pos + 1);
        if (e === 0x75) {
          if (!HEX4.test(text.slice(pos + 2, pos + 6))) throw new NotCanonical();
          pos += 6;
          continue;
        }
        if (!SIMPLE_ESCAPES.has(e)) throw new NotCanonical();
        pos += 2;
        continue;
      }
      // A lone surrogate is written escaped by JSON.stringify: let it normalise this string.
      if (c >= 0xd800 && c <= 0xdfff) plain = false;
      pos++;
    }
    this.pos = pos + 1;
    const literal = text.slice(start, pos + 1);
    if (plain) {
      this.decoded = literal.slice(1, -1);
      return literal;
    }
    this.decoded = JSON.parse(literal) as string;
    return JSON.stringify(this.decoded);
  }

  private number(): string {
    NUMBER.lastIndex = this.pos;
    const m = NUMBER.exec(this.text);
    if (!m) throw new NotCanonical();
    this.pos += m[0].length;
    return m[0];
  }

  private object(depth: number): string {
    this.pos++;
    this.ws();
    if (this.text.charCodeAt(this.pos) === 0x7d) {
      this.pos++;
      return '{}';
    }
    const keys: string[] = [];
    const members: string[] = [];
    let sorted = true;
    for (;;) {
      this.ws();
      if (this.text.charCodeAt(this.pos) !== QUOTE) throw new NotCanonical();
      const literal = this.string();
      const key = this.decoded;
      this.ws();
      if (this.text.charCodeAt(this.pos++) !== 0x3a) throw new NotCanonical();
      const last = keys.length > 0 ? (keys[keys.length - 1] as string) : undefined;
      if (last !== undefined && !(last < key)) sorted = false;
      keys.push(key);
      members.push(`${literal}:${this.value(depth + 1)}`);
      this.ws();
      const next = this.text.charCodeAt(this.pos++);
      if (next === 0x7d) break;
      if (next !== 0x2c) throw new NotCanonical();
    }
    if (sorted) return `{${members.join(',')}}`;
    const order = sortedOrder(keys);
    let out = '{';
    for (let i = 0; i < order.length; i++) {
      const member = order[i] as number;
      if (i > 0) {
        // Sorted, equal keys are neighbours: a duplicate is ambiguous, so not canonical.
        if (keys[member] === keys[order[i - 1] as number]) throw new NotCanonical();
        out += ',';
      }
      out += members[member];
    }
    return `${out}}`;
  }

  private array(depth: number): string {
    this.pos++;
    this.ws();
    if (this.text.charCodeAt(this.pos) === 0x5d) {
      this.pos++;
      return '[]';
    }
    const items: string[] = [];
    for (;;) {
      items.push(this.value(depth + 1));
      this.ws();
      const next = this.text.charCodeAt(this.pos++);
      if (next === 0x5d) return `[${items.join(',')}]`;
      if (next !== 0x2c) throw new NotCanonical();
    }
  }
}

const LITERALS = ['true', 'false', 'null'] as const;
const HEX4 = /^[0-9a-fA-F]{4}$/;
/** The characters after a backslash that JSON allows, besides `u`: " \ / b f n r t. */
const SIMPLE_ESCAPES = new Set([0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74]);

function compareUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Objects up to this many keys are put in order by insertion (O(n²), but no closure or copy). */
const INSERTION_SORT_MAX = 16;

/**
 * The indices of `keys` in UTF-16 code-unit order. A request body's objects are small: for them
 * an insertion sort, which allocates nothing but the result (Array.prototype.sort with a
 * comparator copies the array and calls a closure per comparison); larger ones use that sort.
 */
function sortedOrder(keys: readonly string[]): number[] {
  const n = keys.length;
  const order: number[] = [];
  if (n > INSERTION_SORT_MAX) {
    for (let i = 0; i < n; i++) order.push(i);
    return order.sort((a, b) => compareUnits(keys[a] as string, keys[b] as string));
  }
  for (let i = 0; i < n; i++) {
    const key = keys[i] as string;
    let j = i;
    order.push(i);
    while (j > 0 && (keys[order[j - 1] as number] as string) > key) {
      order[j] = order[j - 1] as number;
      j--;
    }
    order[j] = i;
  }
  return order;
}

/**
 * True when `bytes` are JSON that is already canonical: compact, object keys strictly ascending,
 * strings without escapes, keys ASCII. Then `canonicalJson(text) === text`, so the UTF-8 bytes
 * themselves are the canonical form and a fingerprint can hash them without decoding, parsing or
 * rebuilding anything. False means "not shown canonical" (whitespace, escapes, unsorted keys,
 * invalid JSON…): the caller then takes the full path, which decides. The bytes must already be
 * known to be valid UTF-8.
 */
export function isCanonicalJsonBytes(bytes: Uint8Array): boolean {
  const end = canonicalValueEnd(bytes, 0, 0);
  return end === bytes.length;
}

const NOT = -1;

/** Where the canonical value that starts at `pos` ends, or NOT. */
function canonicalValueEnd(b: Uint8Array, pos: number, depth: number): number {
  if (depth > MAX_DEPTH || pos >= b.length) return NOT;
  const c = b[pos] as number;
  if (c === QUOTE) return stringEnd(b, pos, false);
  if (c === 0x7b) return objectEnd(b, pos, depth);
  if (c === 0x5b) return arrayEnd(b, pos, depth);
  if (c === 0x74) return wordEnd(b, pos, TRUE_BYTES);
  if (c === 0x66) return wordEnd(b, pos, FALSE_BYTES);
  if (c === 0x6e) return wordEnd(b, pos, NULL_BYTES);
  return numberEnd(b, pos);
}

function wordEnd(b: Uint8Array, pos: number, word: readonly number[]): number {
  for (let i = 0; i < word.length; i++) if (b[pos + i] !== word[i]) return NOT;
  return pos + word.length;
}

/** A string without escapes or control characters; a key must also be ASCII (see compareKeys). */
function stringEnd(b: Uint8Array, pos: number, key: boolean): number {
  for (let i = pos + 1; i < b.length; i++) {
    const c = b[i] as number;
    if (c === QUOTE) return i + 1;
    if (c < 0x20 || c === BACKSLASH || (key && c >= 0x80)) return NOT;
  }
  return NOT;
}

/** `-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?`, the NUMBER the parser accepts, kept as written. */
function numberEnd(b: Uint8Array, pos: number): number {
  let i = pos;
  if (b[i] === 0x2d) i++;
  if (b[i] === 0x30) i++;
  else if (isDigit(b[i]) && b[i] !== 0x30) while (isDigit(b[i])) i++;
  else return NOT;
  if (b[i] === 0x2e) {
    if (!isDigit(b[++i])) return NOT;
    while (isDigit(b[i])) i++;
  }
  if (b[i] === 0x65 || b[i] === 0x45) {
    i++;
    if (b[i] === 0x2b || b[i] === 0x2d) i++;
    if (!isDigit(b[i])) return NOT;
    while (isDigit(b[i])) i++;
  }
  return i;
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x39;
}

function arrayEnd(b: Uint8Array, pos: number, depth: number): number {
  let i = pos + 1;
  if (b[i] === 0x5d) return i + 1;
  for (;;) {
    i = canonicalValueEnd(b, i, depth + 1);
    if (i === NOT) return NOT;
    const next = b[i++];
    if (next === 0x5d) return i;
    if (next !== 0x2c) return NOT;
  }
}

function objectEnd(b: Uint8Array, pos: number, depth: number): number {
  let i = pos + 1;
  if (b[i] === 0x7d) return i + 1;
  let lastKey = -1;
  let lastKeyEnd = -1;
  for (;;) {
    if (b[i] !== QUOTE) return NOT;
    const keyEnd = stringEnd(b, i, true);
    if (keyEnd === NOT) return NOT;
    // Strictly ascending: unsorted keys need sorting, equal ones are duplicates; both take the full path.
    if (lastKey >= 0 && compareKeys(b, lastKey + 1, lastKeyEnd - 1, i + 1, keyEnd - 1) >= 0) return NOT;
    lastKey = i;
    lastKeyEnd = keyEnd;
    if (b[keyEnd] !== 0x3a) return NOT;
    i = canonicalValueEnd(b, keyEnd + 1, depth + 1);
    if (i === NOT) return NOT;
    const next = b[i++];
    if (next === 0x7d) return i;
    if (next !== 0x2c) return NOT;
  }
}

/** Byte order of two ASCII keys, which is their UTF-16 code unit order. */
function compareKeys(b: Uint8Array, a0: number, a1: number, b0: number, b1: number): number {
  const n = Math.min(a1 - a0, b1 - b0);
  for (let k = 0; k < n; k++) {
    const d = (b[a0 + k] as number) - (b[b0 + k] as number);
    if (d !== 0) return d;
  }
  return a1 - a0 - (b1 - b0);
}

const TRUE_BYTES = [0x74, 0x72, 0x75, 0x65] as const;
const FALSE_BYTES = [0x66, 0x61, 0x6c, 0x73, 0x65] as const;
const NULL_BYTES = [0x6e, 0x75, 0x6c, 0x6c] as const;
