import { decodeUtf8, readJsonField } from './canonical-json.js';
import { parseIdempotencyKey, parseKeyLine } from './key.js';
import { type EngineRequest, headerValues, MANY_LINES, onlyHeaderLine } from './request.js';

export type KeyLookup =
  | { status: 'absent' }
  | { status: 'invalid'; reason: string }
  | { status: 'ok'; key: string };

/** Where a key may come from: the header, and optionally a query parameter or a JSON body field. */
export interface KeyCarriers {
  /** Lowercase header name. */
  keyHeader: string;
  keyQueryParam?: string | undefined;
  keyBodyField?: string | undefined;
  minKeyLength: number;
}

const ABSENT: KeyLookup = Object.freeze({ status: 'absent' });

/**
 * Finds the request's key. The header wins; the other carriers are tried only when it is
 * absent, in the order query, body. Each carrier is as strict as the header: a carrier that is
 * present but malformed (two query parameters, a body field that is not a string) is
 * `invalid`, never `absent`, so the client learns what is wrong with what it sent.
 */
export function findKey(request: EngineRequest, carriers: KeyCarriers): KeyLookup {
  const line = onlyHeaderLine(request.headers, carriers.keyHeader);
  if (line === MANY_LINES) {
    return lookupOf(
      parseIdempotencyKey(headerValues(request.headers, carriers.keyHeader), carriers.minKeyLength),
    );
  }
  if (line !== undefined) return lookupOf(parseKeyLine(line, carriers.minKeyLength));
  const carried = fromQuery(request, carriers) ?? fromBody(request, carriers);
  if (carried === undefined) return ABSENT;
  if (typeof carried !== 'string') return carried;
  // Other carriers hold the bare key itself, never an sf-string, so a quote is refused outright.
  if (carried.includes('"')) return { status: 'invalid', reason: 'the key may not contain a quote' };
  return lookupOf(parseKeyLine(carried, carriers.minKeyLength));
}

function fromQuery(request: EngineRequest, carriers: KeyCarriers): string | KeyLookup | undefined {
  const name = carriers.keyQueryParam;
  if (!name || !request.query) return undefined;
  const values = new URLSearchParams(request.query).getAll(name);
  if (values.length === 0) return undefined;
  if (values.length > 1) return { status: 'invalid', reason: `more than one ${name} query parameter` };
  return values[0];
}

function fromBody(request: EngineRequest, carriers: KeyCarriers): string | KeyLookup | undefined {
  const name = carriers.keyBodyField;
  if (!name || !request.body?.byteLength) return undefined;
  // A body that is not UTF-8 is not JSON (RFC 8259 §8.1), so it carries no field.
  const text = decodeUtf8(request.body);
  const field = text === undefined ? undefined : readJsonField(text, name);
  if (!field?.present) return undefined;
  return field.value ?? { status: 'invalid', reason: `the ${name} field must be a string` };
}

function lookupOf(parsed: ReturnType<typeof parseIdempotencyKey>): KeyLookup {
  return parsed.ok ? { status: 'ok', key: parsed.key } : { status: 'invalid', reason: parsed.reason };
}
