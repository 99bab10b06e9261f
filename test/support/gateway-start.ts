import { startGateway } from '../../src/gateway/server.js';
import { GATEWAY_DEFAULTS } from '../../src/gateway/types.js';
import type { HttpContractOptions } from '../../src/testing/index.js';
import { serveFetch } from '../../src/testing/serve-fetch.js';

/** `start` for the HTTP contract: the reference app as upstream, the gateway in front of it. */
export function gatewayStart(secret?: string): HttpContractOptions['start'] {
  return async ({ app, options }) => {
    const upstream = await serveFetch((req) => app.fetch(req));
    const running = await startGateway({
      config: {
        ...GATEWAY_DEFAULTS,
        upstream: upstream.url,
        port: 0,
        adminPort: 0,
        replayHeaders: [],
        routes: [],
        ...(secret === undefined ? {} : { secret }),
      },
      store: options.store,
      engine: options,
    });
    return {
      url: running.url,
      async close() {
        await running.close();
        await upstream.close();
      },
    };
  };
}
