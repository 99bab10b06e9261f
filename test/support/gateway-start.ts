import { after } from 'node:test';
import { startGateway } from '../../src/gateway/server.js';
import { GATEWAY_DEFAULTS, type GatewayConfig } from '../../src/gateway/types.js';
import { memoryStore } from '../../src/index.js';
import type { HttpContractOptions } from '../../src/testing/index.js';
import { serveFetch } from '../../src/testing/serve-fetch.js';

/**
 * A gateway configuration for tests: the defaults, on loopback at port 0, no admin listener
 * bound to a fixed port, no routes and no extra replay headers, in front of `upstream`.
 */
export function loopbackGatewayConfig(
  upstream: string,
  overrides: Partial<GatewayConfig> = {},
): GatewayConfig {
  return {
    ...GATEWAY_DEFAULTS,
    upstream,
    port: 0,
    adminPort: 0,
    replayHeaders: [],
    routes: [],
    ...overrides,
  };
}

/** `start` for the HTTP contract: the reference app as upstream, the gateway in front of it. */
export function gatewayStart(secret?: string): HttpContractOptions['start'] {
  return async ({ app, options }) => {
    const upstream = await serveFetch((req) => app.fetch(req));
    const running = await startGateway({
      config: loopbackGatewayConfig(upstream.url, secret === undefined ? {} : { secret }),
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

/**
 * A gateway on loopback in front of a one-line upstream that answers 201 JSON, with the memory
 * store; closed when the calling test (or file) ends.
 */
export async function gatewayInFrontOfStub(config: Partial<GatewayConfig> = {}) {
  const upstream = await serveFetch(() => new Response('{"id":1}', { status: 201 }));
  const gateway = await startGateway({
    config: loopbackGatewayConfig(upstream.url, config),
    store: memoryStore({ onWarning() {} }),
  });
  after(async () => {
    await gateway.close();
    await upstream.close();
  });
  return gateway;
}
