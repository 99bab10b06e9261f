import type { Command } from 'commander';
import { parseStoreUrl } from '../gateway/store-url-parse.js';
import { storeOption, storeUrlFrom, usage, withStore } from './common.js';

export function defineMigrate(program: Command): void {
  program
    .command('migrate')
    .description(
      'Create the PostgreSQL table and index, or the DynamoDB table with TTL (safe to run again, and from several hosts at once).',
    )
    .addOption(storeOption())
    .addHelpText(
      'after',
      `
Example:
  idemkit migrate --store postgres://app@db.internal:5432/app
  idemkit migrate --store 'dynamodb://idemkit?region=eu-west-1'
SQLite creates its schema when the file is opened; Redis needs none.`,
    )
    .action(runMigrate);
}

async function runMigrate(flags: { store?: string }): Promise<void> {
  const url = storeUrlFrom(flags.store);
  const kind = parseStoreUrl(url).kind;
  if (kind === 'memory' || kind === 'redis' || kind === 'redis-cluster') {
    usage(
      `${kind} keeps no schema, so there is nothing to migrate; migrate is for --store postgres://… or dynamodb://…`,
    );
  }
  await withStore(
    url,
    'create the schema',
    async (opened) => {
      // SQLite: opening checked the schema (and created it); PostgreSQL and DynamoDB need the
      // explicit step (DynamoDB: the table, on-demand, with TTL on `ttl`).
      await opened.migrate?.();
      const what = kind === 'dynamodb' ? 'table' : 'schema';
      process.stdout.write(`${what} ready in ${opened.description}\n`);
    },
    { mayCreate: true },
  );
}
