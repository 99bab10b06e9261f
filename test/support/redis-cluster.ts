import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { type PrivateRedis, redisCli, startPrivateRedis } from './redis-server.js';

/*
 * A private 3-primary Redis Cluster on spare loopback ports (no replicas), for the contract suite
 * and the race test on Cluster. Started and stopped by the test that needs it.
 */

export interface PrivateCluster {
  readonly nodes: readonly PrivateRedis[];
  readonly ports: readonly number[];
  destroy(): Promise<void>;
}

export async function startPrivateCluster(): Promise<PrivateCluster> {
  const nodes: PrivateRedis[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      nodes.push(
        await startPrivateRedis([
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          'nodes.conf',
          '--cluster-node-timeout',
          '5000',
        ]),
      );
    }
    const addresses = nodes.map((n) => `127.0.0.1:${n.port}`);
    await promisify(execFile)(
      'redis-cli',
      ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'],
      {
        timeout: 30_000,
      },
    );
    // `--cluster create` returns once slots are assigned; every node must agree before clients
    // load the slot map, or they see CLUSTERDOWN.
    const deadline = Date.now() + 20_000;
    for (const node of nodes) {
      while (!(await redisCli(node.port, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) {
        if (Date.now() > deadline) throw new Error(`cluster node ${node.port} not ok within 20 s`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } catch (error) {
    await Promise.all(nodes.map((n) => n.destroy()));
    throw error;
  }
  return {
    nodes,
    ports: nodes.map((n) => n.port),
    async destroy() {
      await Promise.all(nodes.map((n) => n.destroy()));
    },
  };
}
