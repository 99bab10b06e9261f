import * as z3 from 'zod/v3';
import * as z4 from 'zod/v4';
import { IdempotencyConfigError } from '../core/errors.js';
import { MAX_KEY_LENGTH } from '../core/key.js';

/**
 * A tool's input schema as the SDK takes it: a raw shape (an object of Zod types) or a Zod
 * object. Typed as the subset used here, so the SDK and Zod stay optional peers.
 */
export type InputSchema = Record<string, unknown> | { extend(shape: Record<string, unknown>): unknown };

const DESCRIPTION =
  'Idempotency key: one value per intended action (a UUID), sent again unchanged on every retry of that action, so it runs once and retries get the first result.';

/** Zod 4 types carry `_zod`; Zod 3 types (also `zod/v3` of Zod 4) carry `_def` only. */
function isZod4(value: unknown): boolean {
  return typeof value === 'object' && value !== null && '_zod' in value;
}

function isZodType(value: unknown): boolean {
  return typeof value === 'object' && value !== null && ('_zod' in value || '_def' in value);
}

function keySchema(zod4: boolean): unknown {
  // Optional in the schema: a key may also come in `_meta`; its absence is answered by the
  // wrapper with `idempotency_key_required`, which tells the agent what to do.
  return zod4
    ? z4.string().min(1).max(MAX_KEY_LENGTH).optional().describe(DESCRIPTION)
    : z3.string().min(1).max(MAX_KEY_LENGTH).optional().describe(DESCRIPTION);
}

/**
 * The tool's schema with the key argument added, in the Zod flavour the tool already uses (a
 * shape mixing Zod 3 and Zod 4 types is refused by the SDK).
 */
export function withKeyArgument(
  tool: string,
  schema: InputSchema | undefined,
  keyArgument: string,
): InputSchema {
  if (schema === undefined) return { [keyArgument]: keySchema(true) };
  if (isZodType(schema)) {
    const object = schema as { extend?: (shape: Record<string, unknown>) => unknown; shape?: unknown };
    if (typeof object.extend !== 'function' || object.shape === undefined) {
      throw new IdempotencyConfigError(
        `idempotent tool ${tool}: inputSchema must be a Zod object or a raw shape, to take the ${keyArgument} argument`,
      );
    }
    assertFree(tool, object.shape as Record<string, unknown>, keyArgument);
    return object.extend({ [keyArgument]: keySchema(isZod4(schema)) }) as InputSchema;
  }
  const shape = schema as Record<string, unknown>;
  assertFree(tool, shape, keyArgument);
  const first = Object.values(shape)[0];
  return { ...shape, [keyArgument]: keySchema(first === undefined || isZod4(first)) };
}

function assertFree(tool: string, shape: Record<string, unknown>, keyArgument: string): void {
  if (Object.hasOwn(shape, keyArgument)) {
    throw new IdempotencyConfigError(
      `idempotent tool ${tool}: its input already has an argument named ${keyArgument}; choose another keyArgument`,
    );
  }
}
