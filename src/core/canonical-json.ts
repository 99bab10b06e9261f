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
