import { PROBLEMS, type ProblemCode } from '../core/errors.js';
import { MAX_KEY_LENGTH } from '../core/key.js';
import { problemType } from '../core/problem.js';

type Json = Record<string, unknown>;

/** Where clients put the key (the engine's carriers): the header, a query parameter, or a JSON body field. */
export interface KeyCarrierOptions {
  /** @default 'Idempotency-Key' */
  keyHeader?: string;
  /** An EC2-style query parameter (`ClientToken`) the server also reads. */
  keyQueryParam?: string;
  /** An AIP-155-style top-level body field (`request_id`) the server also reads. */
  keyBodyField?: string;
}

export interface ComponentOptions extends KeyCarrierOptions {
  /** Covered requests without a key get 400 `missing-key`. @default true */
  required?: boolean;
  /** Also the problems only the gateway answers (408, 431, 502, 504, its 400s). @default false */
  gateway?: boolean;
}

/** Problems only the gateway answers: its request parsing and its upstream. */
const GATEWAY_ONLY: ReadonlySet<ProblemCode> = new Set([
  'invalid-path',
  'malformed-request',
  'request-timeout',
  'headers-too-large',
  'upstream-unavailable',
  'upstream-timeout',
]);
/** Not answers to a well-formed request against a working deployment. */
const NOT_LISTED: ReadonlySet<ProblemCode> = new Set(['invalid-options', 'handler-error']);

/** Component names, prefixed so they never meet a user's own. */
export const NAMES = {
  keyHeader: 'IdempotencyKey',
  keyQuery: 'IdempotencyKeyQuery',
  replayed: 'IdempotentReplayed',
  retryAfter: 'IdempotencyRetryAfter',
  problem: 'IdempotencyProblem',
  response: (status: number) => `IdempotencyProblem${status}`,
} as const;

/** The problem codes idemkit can answer a covered request with, by HTTP status (from core/errors.ts). */
export function problemsByStatus(
  options: { gateway?: boolean; required?: boolean } = {},
): Map<number, ProblemCode[]> {
  const byStatus = new Map<number, ProblemCode[]>();
  for (const code of Object.keys(PROBLEMS) as ProblemCode[]) {
    if (NOT_LISTED.has(code) || (!options.gateway && GATEWAY_ONLY.has(code))) continue;
    if (code === 'missing-key' && options.required === false) continue;
    const { status } = PROBLEMS[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return new Map([...byStatus].sort(([a], [b]) => a - b));
}

const KEY_SCHEMA = {
  type: 'string',
  minLength: 1,
  maxLength: MAX_KEY_LENGTH,
  pattern: '^[\\x21-\\x7E]+$',
};
const KEY_DESCRIPTION =
  'A unique value per operation (a UUID), sent again unchanged on every retry of it: the operation runs once and retries get the first result. 1–255 printable ASCII characters without spaces; the RFC 8941 quoted form ("…") is accepted too.';

/**
 * OpenAPI 3.1 components for idempotent operations: the key parameter(s), the
 * `Idempotent-Replayed` and `Retry-After` headers, the problem+json schema and one response per
 * problem status. Generated from the engine's problem table, so a new problem type appears here.
 */
export function idempotencyComponents(options: ComponentOptions = {}): {
  parameters: Json;
  headers: Json;
  schemas: Json;
  responses: Json;
} {
  const required = options.required ?? true;
  const parameters: Json = {
    [NAMES.keyHeader]: {
      name: options.keyHeader ?? 'Idempotency-Key',
      in: 'header',
      required: required && !options.keyQueryParam && !options.keyBodyField,
      description: KEY_DESCRIPTION,
      schema: KEY_SCHEMA,
    },
  };
  if (options.keyQueryParam) {
    parameters[NAMES.keyQuery] = {
      name: options.keyQueryParam,
      in: 'query',
      required: false,
      description: `${KEY_DESCRIPTION} Read when the ${options.keyHeader ?? 'Idempotency-Key'} header is absent.`,
      schema: KEY_SCHEMA,
    };
  }
  const headers: Json = {
    [NAMES.replayed]: {
      description:
        '`true` on a replay of the stored result of an earlier request with this key, `false` on the first answer.',
      schema: { type: 'string', enum: ['true', 'false'] },
    },
    [NAMES.retryAfter]: {
      description: 'Seconds to wait before retrying with the same key.',
      schema: { type: 'integer', minimum: 0 },
    },
  };
  const byStatus = problemsByStatus(options);
  const allCodes = [...byStatus.values()].flat();
  const schemas: Json = {
    [NAMES.problem]: {
      type: 'object',
      description: 'An RFC 9457 problem answered by idemkit.',
      required: ['type', 'title', 'status'],
      properties: {
        type: { type: 'string', enum: allCodes.map(problemType) },
        title: { type: 'string' },
        status: { type: 'integer' },
        detail: { type: 'string' },
      },
    },
  };
  const responses: Json = {};
  for (const [status, codes] of byStatus) {
    const retries = codes.some((code) => PROBLEMS[code].retryAfterSeconds !== undefined);
    responses[NAMES.response(status)] = {
      description: codes.map((code) => `\`${code}\`: ${PROBLEMS[code].title}`).join('; '),
      ...(retries
        ? { headers: { 'Retry-After': { $ref: `#/components/headers/${NAMES.retryAfter}` } } }
        : {}),
      content: {
        'application/problem+json': {
          schema: {
            allOf: [
              { $ref: `#/components/schemas/${NAMES.problem}` },
              {
                type: 'object',
                properties: { type: { enum: codes.map(problemType) }, status: { enum: [status] } },
              },
            ],
          },
        },
      },
    };
  }
  return { parameters, headers, schemas, responses };
}
