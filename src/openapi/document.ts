import { IdempotencyConfigError } from '../core/errors.js';
import { type ComponentOptions, idempotencyComponents, NAMES } from './components.js';

type Json = Record<string, unknown>;

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

export interface AddIdempotencyOptions extends ComponentOptions {
  /**
   * The covered operations, as `METHOD /path` with the path template as the document writes it;
   * a trailing `*` matches any rest (`POST /orders/*`). A function decides per operation.
   * @default every POST and PATCH operation (the engine's default methods)
   */
  operations?: readonly string[] | ((method: string, path: string) => boolean);
}

/** A standalone OpenAPI 3.1 document holding only the components (what `idemkit openapi` prints without `--in`). */
export function idempotencyDocument(options: ComponentOptions = {}): Json {
  return {
    openapi: '3.1.0',
    info: { title: 'idemkit idempotency components', version: '1.0.0' },
    paths: {},
    components: idempotencyComponents(options),
  };
}

/**
 * A copy of `document` (OpenAPI 3.x) where the covered operations declare the key parameter,
 * the `Idempotent-Replayed` header on their 2xx answers and every problem idemkit may answer
 * them with. The input is never changed; what the document already defines for an operation (a
 * parameter of the same name, a response of the same status) is kept as it is.
 */
export function addIdempotency(document: unknown, options: AddIdempotencyOptions = {}): Json {
  if (!isObject(document) || typeof document.openapi !== 'string' || !document.openapi.startsWith('3.')) {
    throw new IdempotencyConfigError(
      'addIdempotency: the document is not OpenAPI 3.x (no "openapi": "3.…" field)',
    );
  }
  const out = structuredClone(document) as Json;
  const generated = idempotencyComponents(options);
  const components = objectAt(out, 'components');
  for (const [section, entries] of Object.entries(generated)) {
    const target = objectAt(components, section);
    for (const [name, value] of Object.entries(entries)) {
      if (name in target && JSON.stringify(target[name]) !== JSON.stringify(value)) {
        throw new IdempotencyConfigError(
          `addIdempotency: components.${section}.${name} already exists with other content; rename yours`,
        );
      }
      target[name] = value;
    }
  }
  const covered = coverage(options.operations);
  const paths = isObject(out.paths) ? out.paths : {};
  for (const [path, item] of Object.entries(paths)) {
    if (!isObject(item)) continue;
    for (const method of METHODS) {
      const operation = item[method];
      if (isObject(operation) && covered(method.toUpperCase(), path)) decorate(operation, generated, options);
    }
  }
  return out;
}

function decorate(
  operation: Json,
  generated: ReturnType<typeof idempotencyComponents>,
  options: ComponentOptions,
): void {
  if (!Array.isArray(operation.parameters)) operation.parameters = [];
  const parameters = operation.parameters as unknown[];
  const has = (name: string, where: string) =>
    parameters.some(
      (p) => isObject(p) && String(p.name).toLowerCase() === name.toLowerCase() && p.in === where,
    );
  if (!has(options.keyHeader ?? 'Idempotency-Key', 'header')) {
    parameters.push({ $ref: `#/components/parameters/${NAMES.keyHeader}` });
  }
  if (options.keyQueryParam && !has(options.keyQueryParam, 'query')) {
    parameters.push({ $ref: `#/components/parameters/${NAMES.keyQuery}` });
  }
  if (options.keyBodyField) addBodyField(operation, options.keyBodyField);
  const responses = objectAt(operation, 'responses');
  for (const [status, response] of Object.entries(responses)) {
    if (!/^2\d\d$/.test(status) || !isObject(response) || '$ref' in response) continue;
    const headers = objectAt(response, 'headers');
    headers['Idempotent-Replayed'] ??= { $ref: `#/components/headers/${NAMES.replayed}` };
  }
  for (const name of Object.keys(generated.responses)) {
    const status = name.slice(NAMES.problem.length);
    responses[status] ??= { $ref: `#/components/responses/${name}` };
  }
}

/** An AIP-155-style key field in an inline JSON object body; a `$ref` body is left as written. */
function addBodyField(operation: Json, field: string): void {
  const body = operation.requestBody;
  if (!isObject(body) || !isObject(body.content)) return;
  for (const media of Object.values(body.content)) {
    const schema = isObject(media) ? media.schema : undefined;
    if (!isObject(schema) || schema.type !== 'object') continue;
    const properties = objectAt(schema, 'properties');
    properties[field] ??= {
      type: 'string',
      minLength: 1,
      maxLength: 255,
      description: 'Idempotency key: one value per operation, the same on every retry of it.',
    };
  }
}

function coverage(
  operations: AddIdempotencyOptions['operations'],
): (method: string, path: string) => boolean {
  if (typeof operations === 'function') return operations;
  if (operations === undefined) return (method) => method === 'POST' || method === 'PATCH';
  const rules = operations.map((rule) => {
    const match = /^([A-Za-z]+)\s+(\/\S*)$/.exec(rule.trim());
    if (!match) throw new IdempotencyConfigError(`addIdempotency: "${rule}" is not "METHOD /path"`);
    return { method: (match[1] as string).toUpperCase(), path: match[2] as string };
  });
  return (method, path) =>
    rules.some(
      (r) =>
        r.method === method &&
        (r.path.endsWith('*') ? path.startsWith(r.path.slice(0, -1)) : r.path === path),
    );
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `parent[key]`, made an empty object first when absent. */
function objectAt(parent: Json, key: string): Json {
  if (!isObject(parent[key])) parent[key] = {};
  return parent[key] as Json;
}
