import { ClientConfigError } from './errors.js';
import { dereference, download } from './openapi-load.js';
import { type KeyCarrier, policyForMethod, type RetryPolicy } from './policy.js';

/** An OpenAPI 3 (or Swagger 2) document as an object, a file path, or a `file:`, `http:` or `https:` URL. */
export type OpenApiSource = object | string | URL;

export interface OpenApiOptions {
  document: OpenApiSource;
  /**
   * Names that carry a key wherever an operation declares them (header, query parameter or
   * top-level body property), compared case-insensitively; the document's spelling is sent.
   * @default ['Idempotency-Key', 'X-Idempotency-Key', 'request_id', 'requestId', 'ClientToken']
   */
  keyNames?: readonly string[];
}

/** One operation of the document and the policy its declarations give it. */
export interface DiscoveredOperation {
  method: string;
  /** The path template as the document writes it, e.g. `/payments/{paymentPspReference}/refunds`. */
  path: string;
  operationId?: string;
  policy: RetryPolicy;
}

export interface OpenApiDiscovery {
  operations: DiscoveredOperation[];
  /** Path prefixes of the document's servers (`/v71` of `https://checkout-test.adyen.com/v71`). */
  basePaths: string[];
}

export const DEFAULT_KEY_NAMES = [
  'Idempotency-Key',
  'X-Idempotency-Key',
  'request_id',
  'requestId',
  'ClientToken',
];

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

type Json = Record<string, unknown>;

/**
 * Reads an OpenAPI document and classifies every operation: `keyed` when it declares a key
 * carrier — an `Idempotency-Key` header (Stripe, Adyen), a `requestId`/`request_id` query
 * parameter or body property (Google AIP-155), a `ClientToken` parameter or property (AWS) —
 * with the first found in the order header, query, body (the order idemkit's server reads
 * them); otherwise `idempotent` or `unsafe` by method, since the document says it takes no key.
 * References are resolved by @readme/openapi-parser, loaded only here.
 */
export async function discoverOperations(
  source: OpenApiSource,
  keyNames: readonly string[] = DEFAULT_KEY_NAMES,
  fetchImpl: typeof fetch = globalThis.fetch,
): Promise<OpenApiDiscovery> {
  const document = await dereference(await download(source, fetchImpl));
  if (!isObject(document) || !isObject(document.paths)) {
    throw new ClientConfigError('createClient({ openapi }): the document has no paths object');
  }
  const names = new Set(keyNames.map((name) => name.toLowerCase()));
  const operations: DiscoveredOperation[] = [];
  for (const [path, item] of Object.entries(document.paths)) {
    if (!isObject(item)) continue;
    for (const method of METHODS) {
      const operation = item[method];
      if (!isObject(operation)) continue;
      const parameters = [...objects(item.parameters), ...objects(operation.parameters)];
      const carrier =
        parameterCarrier(parameters, 'header', names) ??
        parameterCarrier(parameters, 'query', names) ??
        bodyCarrier(operation, parameters, names);
      const upper = method.toUpperCase();
      operations.push({
        method: upper,
        path,
        ...(typeof operation.operationId === 'string' ? { operationId: operation.operationId } : {}),
        policy: carrier
          ? Object.freeze({ kind: 'keyed', carrier: Object.freeze(carrier) })
          : policyForMethod(upper, 'unsafe'),
      });
    }
  }
  return { operations, basePaths: basePathsOf(document) };
}

function parameterCarrier(
  parameters: Json[],
  where: 'header' | 'query',
  names: Set<string>,
): KeyCarrier | undefined {
  const found = parameters.find(
    (p) => p.in === where && typeof p.name === 'string' && names.has(p.name.toLowerCase()),
  );
  return found ? { in: where, name: found.name as string } : undefined;
}

/** A top-level property of a JSON or form body (OpenAPI 3 `requestBody`, Swagger 2 body/formData). */
function bodyCarrier(operation: Json, parameters: Json[], names: Set<string>): KeyCarrier | undefined {
  const schemas: unknown[] = [];
  const content = isObject(operation.requestBody) ? operation.requestBody.content : undefined;
  if (isObject(content)) {
    for (const [type, media] of Object.entries(content)) {
      if (/json|x-www-form-urlencoded/i.test(type) && isObject(media)) schemas.push(media.schema);
    }
  }
  for (const p of parameters) {
    if (p.in === 'body') schemas.push(p.schema);
    if (p.in === 'formData' && typeof p.name === 'string' && names.has(p.name.toLowerCase()))
      return { in: 'body', name: p.name };
  }
  for (const schema of schemas) {
    const name = propertyNames(schema).find((n) => names.has(n.toLowerCase()));
    if (name !== undefined) return { in: 'body', name };
  }
  return undefined;
}

/** Properties of a schema and of its `allOf`/`oneOf`/`anyOf` members, one level down. */
function propertyNames(schema: unknown): string[] {
  if (!isObject(schema)) return [];
  const own = isObject(schema.properties) ? Object.keys(schema.properties) : [];
  const members = [...objects(schema.allOf), ...objects(schema.oneOf), ...objects(schema.anyOf)];
  return [...own, ...members.flatMap((m) => (isObject(m.properties) ? Object.keys(m.properties) : []))];
}

function basePathsOf(document: Json): string[] {
  const paths = new Set<string>();
  if (typeof document.basePath === 'string') paths.add(document.basePath);
  for (const server of objects(document.servers)) {
    if (typeof server.url !== 'string') continue;
    // Server URLs may be relative or templated (`https://{region}.example.com/v1`).
    const pathname = new URL(server.url.replace(/\{[^}]*\}/g, 'x'), 'http://base.invalid').pathname;
    paths.add(pathname);
  }
  return [...paths].map((p) => p.replace(/\/+$/, '')).filter((p) => p !== '');
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function objects(value: unknown): Json[] {
  return Array.isArray(value) ? value.filter(isObject) : [];
}
