import { type Command, Option } from 'commander';
import { parseIdempotencyKey } from '../core/key.js';
import { hashCredential, scopeHash } from '../core/scope.js';
import { usage } from './common.js';

/*
 * Which record `inspect` and `purge` act on. The store key is the engine's scope hash, so it is
 * computed exactly as the engine does: principal = SHA-256 (base64url) of the principal header's
 * value, tenant as sent, method upper-cased, path without the query, key after sf-string parsing.
 */

export interface SelectorFlags {
  principal?: string;
  principalHash?: string;
  tenant?: string;
  method?: string;
  path?: string;
  key?: string;
  storeKey?: string;
}

export function addSelectorOptions(command: Command): Command {
  return command
    .addOption(
      new Option(
        '--principal <value>',
        'the principal header value as the client sent it (e.g. "Bearer sk_…")',
      ).conflicts('principalHash'),
    )
    .addOption(
      new Option(
        '--principal-hash <hash>',
        'the principal as its hash, so no credential lands in shell history',
      ),
    )
    .option('--tenant <tenant>', 'the tenant header value, when the gateway runs with --tenant-header')
    .option('--method <method>', 'request method (default POST)')
    .option('--path <path>', 'request path without the query, e.g. /charges')
    .option('--key <key>', 'the Idempotency-Key the client sent')
    .addOption(
      new Option(
        '--store-key <hash>',
        'the record key itself (the "key" in gateway logs), instead of the above',
      ).conflicts(['principal', 'principalHash', 'tenant', 'method', 'path', 'key']),
    );
}

/** Whether any selector was given (purge uses it to tell "one record" from "--expired"). */
export const hasSelector = (flags: SelectorFlags): boolean =>
  ['principal', 'principalHash', 'tenant', 'method', 'path', 'key', 'storeKey'].some(
    (name) => flags[name as keyof SelectorFlags] !== undefined,
  );

/** The store key the flags name; throws a usage error (exit 2) saying what is missing. */
export function storeKeyOf(flags: SelectorFlags): string {
  if (flags.storeKey !== undefined) {
    if (!/^[0-9a-f]{64}$/.test(flags.storeKey))
      usage('--store-key is the 64-character hex key from the logs');
    return flags.storeKey;
  }
  if (flags.path === undefined || flags.key === undefined) {
    usage(
      'name the record: --path /charges --key K (with --principal or --principal-hash), or --store-key HASH',
    );
  }
  if (!flags.path.startsWith('/') || /[?#]/.test(flags.path)) {
    usage(`--path "${flags.path}" must start with / and have no query: the scope uses the path alone`);
  }
  const parsed = parseIdempotencyKey([flags.key]);
  if (!parsed.ok) usage(`--key: ${parsed.reason}`);
  if (flags.principalHash !== undefined && !/^[A-Za-z0-9_-]{43}$/.test(flags.principalHash)) {
    usage('--principal-hash is the 43-character base64url SHA-256 of the header value');
  }
  const method = flags.method ?? 'POST';
  if (!/^[A-Za-z]+$/.test(method)) usage(`--method "${method}" is not an HTTP method`);
  return scopeHash({
    tenant: flags.tenant ?? '',
    principal: flags.principalHash ?? hashCredential(flags.principal),
    method: method.toUpperCase(),
    path: flags.path,
    key: parsed.key,
  });
}
