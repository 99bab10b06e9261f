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

/** Every field line of a header (a fetch `Headers` has already joined them with ", "). */
export function headerValues(headers: HeaderInput, name: string): string[] {
  if (typeof (headers as { get?: unknown }).get === 'function') {
    const value = (headers as { get(name: string): string | null }).get(name);
    return value === null ? [] : [value];
  }
  const value = (headers as Record<string, string | readonly string[] | undefined>)[name];
  if (value === undefined) return [];
  return typeof value === 'string' ? [value] : [...value];
}

export function headerValue(headers: HeaderInput, name: string): string | undefined {
  const values = headerValues(headers, name);
  return values.length === 0 ? undefined : values.join(', ');
}
