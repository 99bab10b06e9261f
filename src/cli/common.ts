import { existsSync } from 'node:fs';
import { Option } from 'commander';
import { isIdempotencyError } from '../core/errors.js';
import { ConfigError } from '../gateway/config-error.js';
import { type OpenedStore, openStore } from '../gateway/store-url.js';
import { DEFAULT_SQLITE_PATH, parseStoreUrl } from '../gateway/store-url-parse.js';

export const STORE_HELP =
  `sqlite:./path.db (default sqlite:${DEFAULT_SQLITE_PATH}), memory:, postgres://…, redis://…, ` +
  'redis-cluster://host:port,host:port, dynamodb://TABLE?region=…; env IDEMKIT_STORE';

export const storeOption = (): Option => new Option('--store <url>', STORE_HELP);

/** `--store` > `IDEMKIT_STORE` > the default SQLite file, validated. */
export function storeUrlFrom(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.IDEMKIT_STORE?.trim() ? env.IDEMKIT_STORE : undefined;
  const url = flag ?? fromEnv ?? `sqlite:${DEFAULT_SQLITE_PATH}`;
  parseStoreUrl(url, flag === undefined && fromEnv !== undefined ? 'IDEMKIT_STORE' : '--store');
  return url;
}

/** A usage mistake commander cannot see (two selectors at once, a missing pair): exit code 2. */
export function usage(message: string): never {
  throw new ConfigError(message);
}

/** The secret from the environment only: a flag would land in `ps` output and shell history. */
export function secretFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.IDEMKIT_SECRET?.trim() ? env.IDEMKIT_SECRET : undefined;
}

/**
 * Opens the store for an admin command, runs `work`, and always closes it. A failure that is not
 * a usage error gets what was being done and where, so "ECONNREFUSED" alone never reaches the user.
 */
export async function withStore<T>(
  url: string,
  doing: string,
  work: (opened: OpenedStore) => Promise<T>,
  /** Opening a SQLite path creates the file: only migrate may; reading should not invent an empty store. */
  { mayCreate = false } = {},
): Promise<T> {
  const target = parseStoreUrl(url);
  if (target.kind === 'sqlite' && !mayCreate && !existsSync(target.path)) {
    usage(`no SQLite store at ${target.path}: pass the gateway's --store (sqlite:PATH) or set IDEMKIT_STORE`);
  }
  const opened = await openStore(url, { requireSecret: false });
  try {
    return await work(opened);
  } catch (error) {
    if (isIdempotencyError(error) && error.code === 'invalid-options') throw error;
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(
      `cannot ${doing} in ${opened.description}: ${message}; check that the store is up and --store points at it`,
      {
        cause: error,
      },
    );
  } finally {
    await opened.close().catch(() => {});
  }
}
