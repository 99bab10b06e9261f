import { ConfigError } from './config-error.js';
import { type DynamoDBTarget, parseDynamoDBUrl } from './store-url-dynamodb.js';
import { parseSize } from './units.js';

/** Where `--store` points, parsed without loading any driver (config validation uses it too). */
export type StoreTarget =
  | ({ kind: 'memory' } & MemoryLimits)
  | { kind: 'sqlite'; path: string }
  | { kind: 'postgres'; url: string }
  | { kind: 'redis'; url: string; client: RedisClientChoice }
  | {
      kind: 'redis-cluster';
      nodes: { host: string; port: number }[];
      auth: RedisAuth;
      client: RedisClientChoice;
    }
  | DynamoDBTarget;

/** `memory:?maxEntries=…&maxBytes=64MiB&maxEntriesPerPrincipal=…`; absent ones keep the store's defaults. */
export interface MemoryLimits {
  maxEntries?: number;
  maxBytes?: number;
  maxEntriesPerPrincipal?: number;
}

/** `?client=` picks the driver when both are installed; `auto` prefers @redis/client (faster). */
export type RedisClientChoice = 'auto' | 'node-redis' | 'ioredis';
export interface RedisAuth {
  username?: string;
  password?: string;
}

export const DEFAULT_SQLITE_PATH = './.idemkit/idemkit.db';
const EXAMPLES =
  'use sqlite:./path.db, memory:, postgres://user@host/db, redis://host:6379, redis-cluster://host:port,host:port or dynamodb://TABLE?region=…';

export function parseStoreUrl(url: string, source = '--store'): StoreTarget {
  const fail = (what: string): never => {
    throw new ConfigError(`${source}: ${what}`);
  };
  const scheme = /^([a-z-]+):/i.exec(url)?.[1]?.toLowerCase();
  switch (scheme) {
    case 'memory': {
      const query = /^memory:(?:\/\/)?(?:\?(.*))?$/is.exec(url);
      if (!query) fail(`"${url}": memory: takes only options, e.g. memory:?maxBytes=64MiB&maxEntries=100000`);
      return { kind: 'memory', ...memoryLimits(query?.[1] ?? '', source, fail) };
    }
    case 'sqlite': {
      // sqlite:./a.db, sqlite:/abs/a.db, sqlite:///abs/a.db, sqlite://./a.db
      const path = url.slice('sqlite:'.length).replace(/^\/\/(?=[./~]|$)/, '');
      if (path === ':memory:')
        fail('an in-memory SQLite database is private to one connection; use memory: instead');
      return { kind: 'sqlite', path: path === '' ? DEFAULT_SQLITE_PATH : path };
    }
    case 'postgres':
    case 'postgresql':
      if (!URL.canParse(url) || !new URL(url).hostname)
        fail(`"${redactUrl(url)}" is not a PostgreSQL URL; e.g. postgres://user@127.0.0.1:5432/db`);
      return { kind: 'postgres', url };
    case 'redis':
    case 'rediss': {
      if (!URL.canParse(url) || !new URL(url).hostname)
        fail(`"${redactUrl(url)}" is not a Redis URL; e.g. redis://127.0.0.1:6379`);
      const parsed = new URL(url);
      const client = clientChoice(parsed.searchParams.get('client'), fail);
      parsed.searchParams.delete('client');
      return { kind: 'redis', url: parsed.toString(), client };
    }
    case 'redis-cluster':
      return parseCluster(url, fail);
    case 'dynamodb':
      return parseDynamoDBUrl(url, fail);
    default:
      return fail(`"${redactUrl(url)}" is not a store URL; ${EXAMPLES}`);
  }
}

function parseCluster(url: string, fail: (what: string) => never): StoreTarget {
  // WHATWG URL rejects a comma-separated host list, so split it by hand.
  const match = /^redis-cluster:\/\/(?:([^@/]*)@)?([^/?]+)\/?(?:\?(.*))?$/i.exec(url);
  if (!match)
    return fail(
      `"${redactUrl(url)}" is not a cluster URL; e.g. redis-cluster://127.0.0.1:7000,127.0.0.1:7001`,
    );
  const nodes = (match[2] as string).split(',').map((part) => {
    const node = /^([^:,\s]+):(\d{1,5})$/.exec(part.trim());
    const port = Number(node?.[2]);
    if (!node || port < 1 || port > 65_535) fail(`cluster node "${part}" must be host:port`);
    return { host: node?.[1] as string, port };
  });
  const auth: RedisAuth = {};
  if (match[1]) {
    const [user = '', password] = match[1].split(':');
    if (user) auth.username = decodeURIComponent(user);
    if (password !== undefined) auth.password = decodeURIComponent(password);
  }
  const client = clientChoice(new URLSearchParams(match[3] ?? '').get('client'), fail);
  return { kind: 'redis-cluster', nodes, auth, client };
}

const MEMORY_COUNTS = ['maxEntries', 'maxEntriesPerPrincipal'] as const;

/** Reads the memory store's limits; names are case-sensitive, like the options they set. */
function memoryLimits(query: string, source: string, fail: (what: string) => never): MemoryLimits {
  const limits: MemoryLimits = {};
  for (const [name, value] of new URLSearchParams(query)) {
    if (name !== 'maxBytes' && !(MEMORY_COUNTS as readonly string[]).includes(name)) {
      fail(`memory: unknown option "${name}"; use maxEntries, maxBytes or maxEntriesPerPrincipal`);
    }
    const field = name as keyof MemoryLimits;
    if (limits[field] !== undefined) fail(`memory:?${name} is given twice`);
    limits[field] = field === 'maxBytes' ? memoryBytes(value, source, fail) : memoryCount(name, value, fail);
  }
  return limits;
}

function memoryCount(name: string, value: string, fail: (what: string) => never): number {
  const count = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(count) || count < 1) {
    fail(`memory:?${name}=${value}: use a positive whole number, e.g. ${name}=100000`);
  }
  return count;
}

function memoryBytes(value: string, source: string, fail: (what: string) => never): number {
  const bytes = parseSize(value, `${source}: memory:?maxBytes`);
  if (bytes < 1) fail(`memory:?maxBytes=${value}: use a positive size, e.g. maxBytes=64MiB`);
  return bytes;
}

function clientChoice(value: string | null, fail: (what: string) => never): RedisClientChoice {
  if (value === null) return 'auto';
  if (value === 'node-redis' || value === 'ioredis') return value;
  return fail(`?client=${value}: use ?client=node-redis or ?client=ioredis`);
}

/** The URL with any password replaced, for logs and messages. */
export function redactUrl(url: string): string {
  return url.replace(/(\/\/[^:@/]*:)[^@/]*@/, '$1***@');
}
