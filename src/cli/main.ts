#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { isIdempotencyError } from '../core/errors.js';
import { defineDemo } from './demo.js';
import { defineGateway } from './gateway.js';
import { defineInspect } from './inspect.js';
import { defineMigrate } from './migrate.js';
import { defineOpenApi } from './openapi.js';
import { definePurge } from './purge.js';

/*
 * The `idemkit` bin. Exit codes: 0 done; 1 it ran and failed (store down, record not found,
 * duplicates in the demo); 2 fix the command line or configuration (bad flag, bad config file,
 * unknown store URL, missing driver or secret).
 */

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

function createProgram(): Command {
  const program = new Command('idemkit')
    .description('Make API retries safe with Idempotency-Keys.')
    .version(version, '-v, --version')
    // Set before the subcommands exist: commander copies these settings into each of them.
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .configureOutput({ outputError: (text, write) => write(text) });
  defineDemo(program);
  defineGateway(program);
  defineInspect(program);
  definePurge(program);
  defineMigrate(program);
  defineOpenApi(program);
  program.addHelpText(
    'after',
    '\nStart with `idemkit demo`: it shows duplicate charges without idemkit and none with it.\nRun `idemkit <command> --help` for each command.',
  );
  return program;
}

async function main(argv: readonly string[]): Promise<void> {
  try {
    await createProgram().parseAsync(argv);
  } catch (error) {
    process.exitCode = report(error);
  }
}

function report(error: unknown): number {
  // commander printed its own message (or the help) already.
  if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`error: ${message}\n`);
  return isIdempotencyError(error) && error.code === 'invalid-options' ? 2 : 1;
}

await main(process.argv);
