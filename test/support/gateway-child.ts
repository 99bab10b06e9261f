/**
 * A gateway in its own process, for tests that kill -9 it or run two of them on one store.
 * Reads its settings from IDEMKIT_TEST_GATEWAY (JSON) and prints `READY <url> <adminUrl>` when listening.
 */
import { startGateway } from '../../src/gateway/server.js';
import { GATEWAY_DEFAULTS, type GatewayConfig } from '../../src/gateway/types.js';
import { memoryStore } from '../../src/index.js';
import { sqliteStore } from '../../src/stores/sqlite.js';

const settings = JSON.parse(process.env.IDEMKIT_TEST_GATEWAY ?? '{}') as Partial<GatewayConfig> & {
  upstream: string;
  sqlitePath?: string;
};
const store = settings.sqlitePath
  ? sqliteStore({ path: settings.sqlitePath })
  : memoryStore({ onWarning() {} });
const gateway = await startGateway({
  config: { ...GATEWAY_DEFAULTS, replayHeaders: [], routes: [], ...settings, port: 0, adminPort: 0 },
  store,
  engine: { onWarning() {} },
});
process.stdout.write(`READY ${gateway.url} ${gateway.adminUrl}\n`);
process.on('SIGTERM', async () => {
  await gateway.close();
  await store.close();
  process.exit(0);
});
