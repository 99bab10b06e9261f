/**
 * One spelling per path. Route rules, the idempotency scope and the request the upstream gets all
 * use the path this file returns, so two spellings an upstream treats as one route can never get
 * two scopes (and run twice with one key). What cannot be normalised without guessing how the
 * upstream reads it is refused.
 */

export interface PathOptions {
  /** Lowercase the path: for upstreams that route case-insensitively (Express by default). */
  foldCase: boolean;
  /** `/charges/` → `/charges`: for upstreams that ignore a trailing slash (Express by default). */
  foldTrailingSlash: boolean;
}

export type TargetResult =
  | {
      ok: true;
      path: string;
      /** The query as sent, without `?`. */
      query: string;
      /** What the upstream is sent: the path, and `?` with the query when the target had one. */
      target: string;
    }
  | { ok: false; reason: string };

// RFC 3986 §2.3: these never need escaping, so `%63` and `c` are the same character (§6.2.2.2).
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;
// pchar minus `;` (path parameters, below) plus `/`: what may stand unescaped in a path.
const PATH_CHAR = /^[A-Za-z0-9\-._~!$&'()*+,=:@/]$/;
// A query may also hold `/` and `?`; control characters, spaces and non-ASCII bytes are refused.
const QUERY = /^[\x21-\x7e]*$/;

/**
 * Normalises an origin-form request-target (`/path?query`): unreserved escapes decoded, other
 * escapes in upper case, then the folds the options ask for. The query is kept byte for byte.
 * Refused: other request-target forms, dot segments (also `%2e`), empty segments (`//`), `;` path
 * parameters, escaped `/` or `\`, escaped control characters, a raw `\`, `#`, and characters
 * outside RFC 3986 (Node's parser already refuses raw control characters and non-ASCII).
 */
export function normalizeTarget(target: string, options: PathOptions): TargetResult {
  if (!target.startsWith('/')) {
    return refuse('the request-target must be a path from the root (origin-form), not a URL or *');
  }
  const mark = target.indexOf('?');
  const rawPath = mark < 0 ? target : target.slice(0, mark);
  const query = mark < 0 ? '' : target.slice(mark + 1);
  if (!QUERY.test(query) || query.includes('#')) return refuse('the query holds characters a URL may not');

  // Most paths are plain (no escape, `;`, `.` or `//`): already in the one spelling.
  const normalised = PLAIN_PATH.test(rawPath) && !rawPath.includes('//') ? rawPath : normalizePath(rawPath);
  if (typeof normalised !== 'string') return normalised;
  let path = normalised;
  if (options.foldTrailingSlash && path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
  if (options.foldCase) path = foldCase(path);
  return { ok: true, path, query, target: mark < 0 ? path : `${path}?${query}` };
}

const PLAIN_PATH = /^[A-Za-z0-9\-_~!$&'()*+,=:@/]+$/;

/** The escape-decoding, segment-checking pass: the path, or the refusal. */
function normalizePath(rawPath: string): string | TargetResult {
  let path = '';
  for (let i = 0; i < rawPath.length; i++) {
    const c = rawPath.charAt(i);
    if (c === '%') {
      const hex = rawPath.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return refuse('a % in the path must start an escape such as %20');
      const byte = Number.parseInt(hex, 16);
      const decoded = String.fromCharCode(byte);
      if (decoded === '/' || decoded === '\\') return refuse('an escaped / or \\ in the path is ambiguous');
      if (byte < 0x20 || byte === 0x7f) return refuse('the path holds an escaped control character');
      path += UNRESERVED.test(decoded) ? decoded : `%${hex.toUpperCase()}`;
      i += 2;
    } else if (c === ';') {
      return refuse('path parameters (;) are read differently by different servers');
    } else if (!PATH_CHAR.test(c)) {
      return refuse(`the path holds a character a URL may not (${JSON.stringify(c)})`);
    } else path += c;
  }

  const segments = path.split('/').slice(1);
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] as string;
    if (segment === '.' || segment === '..') return refuse('dot segments (. and ..) are not accepted');
    // The last segment may be empty: that is the trailing slash.
    if (segment === '' && i < segments.length - 1) return refuse('empty path segments (//) are not accepted');
  }
  return path;
}

/** Lowercases letters but not escapes: `%C3` stays upper case, as normalisation writes it. */
function foldCase(path: string): string {
  return path.replace(/%[0-9A-F]{2}|[A-Z]+/g, (run) => (run.startsWith('%') ? run : run.toLowerCase()));
}

/**
 * A route pattern in the form requests are matched in: unreserved escapes decoded, the same folds.
 * `*` is kept for the matcher.
 */
export function normalizePattern(pattern: string, options: PathOptions): string {
  let out = pattern.replace(/%([0-9A-Fa-f]{2})/g, (_escape, hex: string) => {
    const decoded = String.fromCharCode(Number.parseInt(hex, 16));
    return UNRESERVED.test(decoded) ? decoded : `%${hex.toUpperCase()}`;
  });
  if (options.foldTrailingSlash && out.length > 1 && out.endsWith('/')) out = out.slice(0, -1);
  if (options.foldCase) out = foldCase(out);
  return out;
}

const refuse = (reason: string): TargetResult => ({ ok: false, reason });
