import { describe, it } from 'node:test';
import { startGateway } from '../../src/gateway/server.js';
import { GATEWAY_DEFAULTS } from '../../src/gateway/types.js';
import { memoryStore } from '../../src/index.js';
import { defineHttpContract } from '../../src/testing/index.js';
import { serveFetch } from '../../src/testing/serve-fetch.js';

const fuzzRuns = Number(process.env.IDEMKIT_FUZZ_RUNS ?? 10_000);

defineHttpContract({
  name: 'gateway + memory store',
  describe,
  it,
  fuzzRuns,
  createStore: () => ({ store: memoryStore({ onWarning() {} }) }),
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
