import { describe, it } from 'node:test';
import { startGateway } from '../../src/gateway/server.js';
import { GATEWAY_DEFAULTS } from '../../src/gateway/types.js';
import { memoryStore } from '../../src/index.js';
import { defineHttpContract, type StoreHandle } from '../../src/testing/index.js';
import { serveFetch } from '../../src/testing/serve-fetch.js';
import { tempSqliteStores } from '../support/temp-sqlite.js';

const fuzzRuns = Number(process.env.IDEMKIT_FUZZ_RUNS ?? 2_000);

const stores: [string, () => StoreHandle][] = [
  ['memory', () => ({ store: memoryStore({ onWarning() {} }) })],
  ['sqlite', tempSqliteStores('idemkit-gateway-')],
];

for (const [name, createStore] of stores) {
  defineHttpContract({
    name: `gateway + ${name} store`,
    describe,
    it,
    fuzzRuns,
    createStore,
    async start({ app, options }) {
      const upstream = await serveFetch((req) => app.fetch(req));
      const gateway = await startGateway({
        config: { ...GATEWAY_DEFAULTS, upstream: upstream.url, port: 0, replayHeaders: [], routes: [] },
        store: options.store,
        engine: options,
      });
      return {
        url: gateway.url,
        async close() {
          await gateway.close();
          await upstream.close();
        },
      };
    },
  });
}
