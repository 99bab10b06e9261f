import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { migrate } from '../../src/stores/postgres.js';
import { type ChaosTcpProxy, startChaosTcpProxy } from '../support/chaos-tcp-proxy.js';
import { type DynaliteProcess, dynamoClient, freshTable, startDynaliteProcess } from '../support/dynalite.js';
import { POSTGRES_URL } from '../support/postgres-service.js';
import { type PrivateRedis, redisCli, startPrivateRedis } from '../support/redis-server.js';
import { type ChaosStoreKind, monoMs, type StoreSpec } from './config.js';

/*
 * A run's store: private where the nemesis restarts it (Redis with appendfsync always, dynalite
 * on a LevelDB directory), a fresh table on the shared PostgreSQL otherwise (its faults go
 * through the proxy; the shared server is never restarted or reconfigured), a file for SQLite.
 * Each SUT reaches a network store through its own fault proxy, so a cut hits one SUT.
 */

export interface StoreEnv {
  kind: ChaosStoreKind;
  /** The spec for a SUT: its own proxy in front of the store. */
  specFor(sut: string): Promise<StoreSpec>;
  proxy(sut: string): ChaosTcpProxy | undefined;
  /** Whether `restart()` exists: a private server the nemesis may kill -9. */
  restartable: boolean;
  /**
   * kill -9 of the store server, `downMs` without one, then a start; resolves once it answers
   * again, with the span in which it was certainly down: from the old process's exit to the new
   * one's spawn. (Down also
   * while the new one starts, but when exactly it begins to accept is not observable from here;
   * judging I9 on the wider span would count claims the new server rightly acknowledged.)
   */
  restart?(downMs: number): Promise<{ downFrom: number; downTo: number }>;
  /** pg-txn: committed effect rows per scope. */
  effectRows?(): Promise<Map<string, number>>;
  /** Stops what it started, drops what it made. */
  close(): Promise<void>;
}

export async function openStoreEnv(kind: ChaosStoreKind, dir: string): Promise<StoreEnv> {
  const proxies = new Map<string, ChaosTcpProxy>();
  const proxied = async (sut: string, port: number) => {
    const proxy = await startChaosTcpProxy({ host: '127.0.0.1', port });
    proxies.set(sut, proxy);
    return proxy.port;
  };
  const closeProxies = async () => {
    await Promise.all([...proxies.values()].map((p) => p.close()));
  };
  const base = { kind, proxy: (sut: string) => proxies.get(sut) };

  switch (kind) {
    case 'sqlite': {
      const path = join(dir, 'store.db');
      return { ...base, restartable: false, specFor: async () => ({ kind, path }), close: closeProxies };
    }
    case 'redis': {
      const redis: PrivateRedis = await startPrivateRedis(['--appendonly', 'yes', '--appendfsync', 'always']);
      const prefix = `chaos-${randomBytes(4).toString('hex')}:`;
      return {
        ...base,
        restartable: true,
        specFor: async (sut) => ({
          kind,
          url: `redis://127.0.0.1:${await proxied(sut, redis.port)}`,
          prefix,
        }),
        async restart(downMs) {
          await redis.stop('SIGKILL');
          const down = { downFrom: monoMs(), downTo: 0 };
          await sleep(downMs);
          down.downTo = monoMs();
          await redis.start();
          await redisCli(redis.port, 'PING');
          return down;
        },
        close: async () => {
          await closeProxies();
          await redis.destroy();
        },
      };
    }
    case 'postgres':
    case 'pg-txn': {
      const admin = new pg.Pool({ connectionString: POSTGRES_URL, max: 2 });
      admin.on('error', () => {});
      const suffix = randomBytes(4).toString('hex');
      const table = `idemkit_chaos_${suffix}`;
      const effects = `idemkit_chaos_effects_${suffix}`;
      await migrate({ pool: admin, table });
      await admin.query(
        `CREATE TABLE "${effects}" (scope text NOT NULL, exec text NOT NULL, pid int, generation int)`,
      );
      const server = new URL(POSTGRES_URL);
      return {
        ...base,
        restartable: false,
        async specFor(sut) {
          const url = new URL(POSTGRES_URL);
          url.host = `127.0.0.1:${await proxied(sut, Number(server.port || 5432))}`;
          return { kind, url: url.toString(), table, effects };
        },
        ...(kind === 'pg-txn' ? { effectRows } : {}),
        close: async () => {
          await closeProxies();
          await admin.query(`DROP TABLE IF EXISTS "${table}"`).catch(() => {});
          await admin.query(`DROP TABLE IF EXISTS "${effects}"`).catch(() => {});
          await admin.end();
        },
      };
      async function effectRows() {
        const { rows } = await admin.query(
          `SELECT scope, count(*)::int AS n FROM "${effects}" GROUP BY scope`,
        );
        return new Map(rows.map((r: { scope: string; n: number }) => [r.scope, r.n]));
      }
    }
    case 'dynamodb': {
      const dynalite: DynaliteProcess = await startDynaliteProcess();
      const client = dynamoClient(dynalite.endpoint);
      const table = await freshTable(client, 'chaos');
      client.destroy();
      const port = Number(new URL(dynalite.endpoint).port);
      return {
        ...base,
        restartable: true,
        specFor: async (sut) => ({ kind, endpoint: `http://127.0.0.1:${await proxied(sut, port)}`, table }),
        async restart(downMs) {
          await dynalite.stop('SIGKILL');
          const down = { downFrom: monoMs(), downTo: 0 };
          await sleep(downMs);
          down.downTo = monoMs();
          await dynalite.start();
          return down;
        },
        close: async () => {
          await closeProxies();
          await dynalite.destroy();
        },
      };
    }
    default:
      return kind satisfies never;
  }
}
