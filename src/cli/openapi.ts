import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parseConfigFile } from '../gateway/config-file.js';
import { addIdempotency, idempotencyDocument } from '../openapi/index.js';
import { usage } from './common.js';

interface OpenApiFlags {
  in?: string;
  out?: string;
  routes?: string;
  config?: string;
  optional?: boolean;
  gateway?: boolean;
  keyQuery?: string;
  keyBodyField?: string;
}

export function defineOpenApi(program: Command): void {
  program
    .command('openapi')
    .description(
      'Print OpenAPI 3.1 components for idempotent operations (the key parameter, Idempotent-Replayed, every problem response), or add them to your document.',
    )
    .option('--in <file>', 'your OpenAPI 3.x document (JSON); without it, only the components are printed')
    .option('--out <file>', 'write here instead of standard output')
    .option(
      '--routes <list>',
      'covered operations, e.g. "POST /charges,POST /orders/*" (default: every POST and PATCH)',
    )
    .option('--config <file>', "take the covered operations from a gateway config file's routes")
    .option('--optional', 'covered requests may omit the key (the header is not required)')
    .option('--gateway', 'also list the problems only the gateway answers (408, 431, 502, 504)')
    .option('--key-query <name>', 'a query parameter that also carries the key (e.g. ClientToken)')
    .option('--key-body-field <name>', 'a JSON body field that also carries the key (e.g. request_id)')
    .addHelpText(
      'after',
      `
Examples:
  idemkit openapi > idempotency.json
  idemkit openapi --in api.json --routes "POST /charges,POST /refunds" --out api.idempotent.json
  idemkit openapi --in api.json --config idemkit.json --gateway`,
    )
    .action(runOpenApi);
}

function runOpenApi(flags: OpenApiFlags): void {
  if (flags.routes && flags.config) usage('give --routes or --config, not both');
  const options = {
    required: !flags.optional,
    gateway: flags.gateway === true,
    ...(flags.keyQuery ? { keyQueryParam: flags.keyQuery } : {}),
    ...(flags.keyBodyField ? { keyBodyField: flags.keyBodyField } : {}),
  };
  let output: unknown;
  if (!flags.in) {
    if (flags.routes || flags.config)
      usage('--routes and --config choose operations of a document: add --in <file>');
    output = idempotencyDocument(options);
  } else {
    const operations = flags.routes
      ? splitRoutes(flags.routes)
      : flags.config
        ? routesOfConfig(flags.config)
        : undefined;
    output = addIdempotency(readJson(flags.in), { ...options, ...(operations ? { operations } : {}) });
  }
  const text = `${JSON.stringify(output, null, 2)}\n`;
  if (flags.out) writeFileSync(flags.out, text);
  else process.stdout.write(text);
}

function splitRoutes(list: string): string[] {
  const routes = list
    .split(',')
    .map((r) => r.trim())
    .filter(Boolean);
  if (routes.length === 0) usage('--routes: give at least one "METHOD /path"');
  return routes;
}

/** The gateway's covered operations: each route's methods (default POST, PATCH) on its path pattern. */
function routesOfConfig(file: string): string[] {
  const settings = parseConfigFile(readText(file), file);
  return (settings.routes ?? []).flatMap((route) =>
    (route.methods ?? ['POST', 'PATCH']).map((m) => `${m} ${route.path}`),
  );
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    return usage(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

function readJson(file: string): unknown {
  const text = readText(file);
  try {
    return JSON.parse(text);
  } catch (error) {
    return usage(
      `${file} is not JSON (${(error as Error).message.replace(/\s+/g, ' ')}); convert YAML documents to JSON first`,
    );
  }
}
