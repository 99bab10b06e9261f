import { IdempotencyConfigError } from '../core/errors.js';

/*
 * Thin adapters over the four Redis client shapes the store accepts. Each is typed structurally
 * (no node-redis or ioredis types in the public API) and reduced to one operation: send a raw
 * command to the node that owns a key, with bulk replies as Buffers (stored responses are
 * binary). Replies stay `unknown`; redis.ts checks their shape.
 */

export type RedisArgument = string | Buffer;

/** node-redis 5 `createClient()` (`@redis/client` or `redis`). */
export interface NodeRedisClientLike {
  sendCommand(args: RedisArgument[], options?: { typeMapping?: Record<number, unknown> }): Promise<unknown>;
}

/** node-redis 5 `createCluster()`: routes a command by the key passed first. */
export interface NodeRedisClusterLike {
  sendCommand(
    firstKey: RedisArgument | undefined,
    isReadonly: boolean | undefined,
    args: RedisArgument[],
    options?: { typeMapping?: Record<number, unknown> },
  ): Promise<unknown>;
  readonly masters: readonly unknown[];
  nodeClient(node: unknown): Promise<NodeRedisClientLike>;
}

/** ioredis 5 `new Redis()`. */
export interface IoRedisLike {
  callBuffer(command: string, args: RedisArgument[]): Promise<unknown>;
}

/** ioredis 5 `new Cluster()`: routes EVALSHA by its keys; `nodes` and `slots` route WAIT. */
export interface IoRedisClusterLike extends IoRedisLike {
  nodes(role: 'master'): IoRedisLike[];
  slots: string[][];
}

export type RedisClientLike = NodeRedisClientLike | NodeRedisClusterLike | IoRedisLike | IoRedisClusterLike;

export interface RedisSender {
  readonly kind: 'node-redis' | 'node-redis-cluster' | 'ioredis' | 'ioredis-cluster';
  /** Sends `args` to the primary that owns `key` (the only node, when standalone). */
  send(key: string, args: RedisArgument[]): Promise<unknown>;
  /** Sends a keyless command to every primary (`CONFIG GET` in `check()`). */
  eachPrimary(args: string[]): Promise<unknown[]>;
}

/** node-redis `RESP_TYPES.BLOB_STRING` ('$'): bulk strings come back as Buffers, not UTF-8 text. */
const BUFFERS = Object.freeze({ typeMapping: Object.freeze({ 36: Buffer }) });

export function detectClient(client: RedisClientLike): RedisSender {
  const c = client as Partial<NodeRedisClusterLike & IoRedisClusterLike & NodeRedisClientLike> | null;
  if (c && typeof c.callBuffer === 'function') {
    const io = client as IoRedisClusterLike;
    if (typeof c.nodes === 'function' && Array.isArray(c.slots)) {
      return {
        kind: 'ioredis-cluster',
        send: (key, args) => {
          const [command, ...rest] = args;
          // WAIT has no key, so ioredis would send it to a random node; it must reach the primary
          // that took the write (and on the connection that wrote it, which cluster nodes are).
          if (command === 'WAIT') return ioredisNodeFor(io, key).callBuffer(command, rest);
          return io.callBuffer(String(command), rest);
        },
        eachPrimary: (args) =>
          Promise.all(io.nodes('master').map((n) => n.callBuffer(args[0] ?? '', args.slice(1)))),
      };
    }
    return {
      kind: 'ioredis',
      send: (_key, [command, ...rest]) => io.callBuffer(String(command), rest),
      eachPrimary: async ([command, ...rest]) => [await io.callBuffer(command ?? '', rest)],
    };
  }
  if (c && typeof c.sendCommand === 'function' && typeof c.nodeClient === 'function' && c.masters) {
    const cluster = client as NodeRedisClusterLike;
    return {
      kind: 'node-redis-cluster',
      send: (key, args) => cluster.sendCommand(key, false, args, BUFFERS),
      eachPrimary: async (args) => {
        const clients = await Promise.all(cluster.masters.map((m) => cluster.nodeClient(m)));
        return Promise.all(clients.map((n) => n.sendCommand(args, BUFFERS)));
      },
    };
  }
  if (c && typeof c.sendCommand === 'function') {
    const single = client as NodeRedisClientLike;
    return {
      kind: 'node-redis',
      send: (_key, args) => single.sendCommand(args, BUFFERS),
      eachPrimary: async (args) => [await single.sendCommand(args, BUFFERS)],
    };
  }
  throw new IdempotencyConfigError(
    'redisStore: client must be a node-redis 5 client or cluster (createClient/createCluster) or an ioredis 5 Redis or Cluster',
  );
}

function ioredisNodeFor(cluster: IoRedisClusterLike, key: string): IoRedisLike {
  const owner = cluster.slots[keySlot(key)]?.[0];
  const node = cluster
    .nodes('master')
    .find(
      (n) =>
        `${(n as { options?: { host?: string } }).options?.host}:${(n as { options?: { port?: number } }).options?.port}` ===
        owner,
    );
  if (!node) throw new Error(`no ioredis cluster node owns the slot of ${key}`);
  return node;
}

/** Redis Cluster hash slot: CRC16 (XMODEM) of the hash tag (the text inside the first `{…}`). */
export function keySlot(key: string): number {
  const bytes = Buffer.from(key, 'utf8');
  let start = 0;
  let end = bytes.length;
  const open = bytes.indexOf(0x7b);
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) {
      start = open + 1;
      end = close;
    }
  }
  let crc = 0;
  for (let i = start; i < end; i++) {
    crc ^= (bytes[i] ?? 0) << 8;
    for (let bit = 0; bit < 8; bit++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}
