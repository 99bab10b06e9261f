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
  /** Used, when present, to send the commands of one tick in one write (see ioredisBatches). */
  pipeline?(): IoRedisPipelineLike;
}

/** An ioredis 5 pipeline: queued commands, one write, `[error, reply]` per command. */
export interface IoRedisPipelineLike {
  callBuffer(command: string, args: RedisArgument[]): unknown;
  exec(): Promise<unknown>;
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
    const send = ioredisBatches(io);
    return {
      kind: 'ioredis',
      send: (_key, [command, ...rest]) => send(String(command), rest),
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

/**
 * ioredis writes every command to the socket on its own (unless the app turned on
 * `enableAutoPipelining`), and Redis then pays a read and a write system call per command: on a
 * busy shard that costs more server CPU than the command itself. So the commands the store sends
 * within one tick go out as one pipeline (one write, the replies read together), as node-redis
 * does by itself. Each command still gets its own reply or error; a failed write fails them all.
 * Standalone only: a Cluster pipeline must stay within one slot.
 */
function ioredisBatches(io: IoRedisLike): (command: string, args: RedisArgument[]) => Promise<unknown> {
  if (typeof io.pipeline !== 'function') return (command, args) => io.callBuffer(command, args);
  const pipeline = io.pipeline.bind(io);
  type Queued = {
    command: string;
    args: RedisArgument[];
    resolve(v: unknown): void;
    reject(e: unknown): void;
  };
  let queue: Queued[] = [];
  function flush(): void {
    const batch = queue;
    queue = [];
    if (batch.length === 1) {
      const [one] = batch as [Queued];
      io.callBuffer(one.command, one.args).then(one.resolve, one.reject);
      return;
    }
    let sent: Promise<unknown>;
    try {
      const p = pipeline();
      for (const { command, args } of batch) p.callBuffer(command, args);
      sent = p.exec();
    } catch (error) {
      sent = Promise.reject(error);
    }
    sent.then(
      (results) => {
        batch.forEach((queued, i) => {
          const result = Array.isArray(results) ? results[i] : undefined;
          if (!Array.isArray(result)) queued.reject(new Error('ioredis pipeline returned no reply'));
          else if (result[0]) queued.reject(result[0]);
          else queued.resolve(result[1]);
        });
      },
      (error: unknown) => {
        for (const queued of batch) queued.reject(error);
      },
    );
  }
  return (command, args) =>
    new Promise((resolve, reject) => {
      if (queue.length === 0) process.nextTick(flush);
      queue.push({ command, args, resolve, reject });
    });
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
