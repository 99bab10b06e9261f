import { fileURLToPath } from 'node:url';
import { ClientConfigError } from './errors.js';
import type { OpenApiSource } from './openapi.js';

const PARSER = '@readme/openapi-parser';

interface ParserModule {
  dereference(api: object | string, options?: object): Promise<unknown>;
}

/**
 * A document at an http(s) URL is fetched here, as the caller asked, and its references are then
 * resolved within it: the parser itself refuses internal addresses (its SSRF guard), and a
 * document's own `$ref`s should not make the client fetch anything. Files are read by the parser
 * (JSON or YAML, with their relative file references).
 */
export async function download(source: OpenApiSource, fetchImpl: typeof fetch): Promise<object | string> {
  const url = source instanceof URL ? source.href : typeof source === 'string' ? source : undefined;
  if (url === undefined || !/^https?:\/\//i.test(url))
    return source instanceof URL ? fileURLToPath(source) : source;
  let text: string;
  try {
    const response = await fetchImpl(url, {
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(30_000),
    });
    text = await response.text();
    if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new ClientConfigError(`createClient({ openapi }): GET ${url} failed: ${message}`, error);
  }
  try {
    return JSON.parse(text) as object;
  } catch (error) {
    throw new ClientConfigError(
      `createClient({ openapi }): ${url} is not JSON (for a YAML document, pass its file path or the parsed object)`,
      error,
    );
  }
}

/** Resolves the document's references with @readme/openapi-parser, an optional peer loaded only here. */
export async function dereference(source: object | string): Promise<unknown> {
  let parser: ParserModule;
  try {
    // A variable specifier: the parser is an optional peer, loaded only when a document is given.
    parser = (await import(PARSER)) as ParserModule;
  } catch (error) {
    throw new ClientConfigError(`createClient({ openapi }) needs ${PARSER}: npm install ${PARSER}`, error);
  }
  try {
    if (typeof source === 'string') return await parser.dereference(source);
    // The parser resolves in place: work on a copy, and never fetch what an object refers to.
    return await parser.dereference(structuredClone(source), {
      dereference: { circular: 'ignore' },
      resolve: { external: false },
    });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new ClientConfigError(`createClient({ openapi }): cannot read the document: ${message}`, error);
  }
}
