/** Request headers as adapters have them: a fetch `Headers` or Node's header record. */
export type HeaderInput =
  | { get(name: string): string | null }
  | Readonly<Record<string, string | readonly string[] | undefined>>;

/** A request as the engine sees it, whatever the framework. */
export interface EngineRequest {
  method: string;
  /** The path without the query string. */
  path: string;
  /** The raw query string without `?`, or ''. */
  query?: string;
  headers: HeaderInput;
  /** The whole body, already read within `maxBodyBytes`. */
  body?: Uint8Array;
  /** The framework's own request, handed to `principal()` and `tenant()`. */
  native?: unknown;
}

type HeaderRecord = Readonly<Record<string, string | readonly string[] | undefined>>;

/**
 * Every field line of a header (a fetch `Headers` has already joined them with ", "). Names are
 * matched case-insensitively: Node's records are lowercase, but hand-written ones (API gateways,
 * tests) say `Idempotency-Key`. Two names that differ only in case are two field lines.
 */
export function headerValues(headers: HeaderInput, name: string): string[] {
  if (typeof (headers as { get?: unknown }).get === 'function') {
    const value = (headers as { get(name: string): string | null }).get(name);
    return value === null ? [] : [value];
  }
  const record = headers as HeaderRecord;
  const wanted = name.toLowerCase();
  // One pass in record order; the length test skips nearly every name before any case folding,
  // so a lowercase record costs a few comparisons per lookup and allocates nothing extra.
  let lines: string[] | undefined;
  for (const field in record) {
    if (field.length !== wanted.length || (field !== wanted && field.toLowerCase() !== wanted)) continue;
    const value = record[field];
    if (value === undefined) continue;
    lines ??= [];
    if (typeof value === 'string') lines.push(value);
    else lines.push(...value);
  }
  return lines ?? [];
}

export function headerValue(headers: HeaderInput, name: string): string | undefined {
  const line = onlyHeaderLine(headers, name);
  return line === MANY_LINES ? joined(headerValues(headers, name)) : line;
}

/** What `onlyHeaderLine` answers for a header sent on more than one field line. */
export const MANY_LINES: unique symbol = Symbol('idemkit.manyHeaderLines');

/**
 * A header's one field line, undefined when it is absent, or `MANY_LINES`. The usual case, one
 * line, answers without building a list: this runs several times for every request.
 */
export function onlyHeaderLine(headers: HeaderInput, name: string): string | undefined | typeof MANY_LINES {
  if (typeof (headers as { get?: unknown }).get === 'function') {
    return (headers as { get(name: string): string | null }).get(name) ?? undefined;
  }
  const record = headers as HeaderRecord;
  const wanted = name.toLowerCase();
  let only: string | undefined;
  for (const field in record) {
    if (field.length !== wanted.length || (field !== wanted && field.toLowerCase() !== wanted)) continue;
    const value = record[field];
    if (value === undefined) continue;
    if (only !== undefined) return MANY_LINES;
    // A one-line list (Node's `headersDistinct`, which the gateway reads) is that line.
    if (typeof value === 'string') only = value;
    else if (value.length === 1) only = value[0] as string;
    else if (value.length > 1) return MANY_LINES;
  }
  return only;
}

function joined(values: string[]): string | undefined {
  return values.length === 0 ? undefined : values.join(', ');
}
