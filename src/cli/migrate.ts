import type { Command } from 'commander';
import { parseStoreUrl } from '../gateway/store-url-parse.js';
import { storeOption, storeUrlFrom, usage, withStore } from './common.js';

export function defineMigrate(program: Command): void {
  program
    .command('migrate')
    .description('Create the PostgreSQL table and index (safe to run again, and from several hosts at once).')
    .addOption(storeOption())
    .addHelpText(
      'after',
      `
Example:
  idemkit migrate --store postgres://app@db.internal:5432/app
SQLite creates its schema when the file is opened; Redis needs none.`,
    )
    .action(runMigrate);
}

async function runMigrate(flags: { store?: string }): Promise<void> {
  const url = storeUrlFrom(flags.store);
  const kind = parseStoreUrl(url).kind;
  if (kind === 'memory' || kind === 'redis' || kind === 'redis-cluster') {
    usage(`${kind} keeps no schema, so there is nothing to migrate; migrate is for --store postgres://…`);
  }
  await withStore(
    url,
    'create the schema',
    async (opened) => {
      // SQLite: opening checked the schema (and created it); PostgreSQL needs the explicit step.
      await opened.migrate?.();
      process.stdout.write(`schema ready in ${opened.description}\n`);
    },
    { mayCreate: true },
  );
}
