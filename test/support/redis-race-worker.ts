import { redisStore } from '../../src/stores/redis.js';
import { raceKeys } from './redis-postgres-race.js';
import {
  ioredisClient,
  ioredisClusterClient,
  nodeRedisClient,
  nodeRedisClusterClient,
} from './redis-service.js';

// One racing process on Redis. argv: <node-redis|ioredis|node-redis-cluster|ioredis-cluster> <url | port,port,port> <prefix> <keys> <seed>
const [kind = '', target = '', prefix = '', count = '0', seed = '0'] = process.argv.slice(2);
const ports = target.split(',').map(Number);
const client =
  kind === 'node-redis'
    ? await nodeRedisClient(target)
    : kind === 'ioredis'
      ? await ioredisClient(target)
      : kind === 'node-redis-cluster'
        ? await nodeRedisClusterClient(ports)
        : await ioredisClusterClient(ports);
const result = await raceKeys(redisStore({ client, prefix }), 'race', Number(count), Number(seed));
if ('destroy' in client) client.destroy();
else client.disconnect();
process.stdout.write(`${JSON.stringify(result)}\n`);
