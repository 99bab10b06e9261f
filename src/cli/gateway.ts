import { type Command, Option } from 'commander';
import { loadGatewayConfig } from '../gateway/config.js';
import { FIELDS } from '../gateway/config-fields.js';
import { STORE_HELP } from './common.js';

/** `<placeholder>` and help per gateway flag; the table in config-fields.ts says the rest. */
const FLAGS: Readonly<Record<string, [string, string]>> = {
  upstream: ['<url>', 'the API to protect, http:// or https:// (required)'],
  port: ['<n>', 'port to listen on; 0 picks a free one (default 8787)'],
  host: ['<addr>', 'address to listen on (default 127.0.0.1)'],
  adminHost: ['<addr>', 'address of the admin listener: health and metrics (default 127.0.0.1)'],
  adminPort: ['<n>', 'port of the admin listener; 0 picks a free one (default 8788)'],
  foldCase: ['', 'treat paths case-insensitively, as the upstream does (rules, keys, forwarded path)'],
  foldTrailingSlash: ['', 'treat /charges/ as /charges, as the upstream does'],
  trustedProxies: [
    '<cidrs>',
    'proxies whose Forwarded/X-Forwarded-* headers are kept, e.g. 10.0.0.0/8,127.0.0.1',
  ],
  headerTimeout: ['<duration>', 'time a client has to send its request headers (default 10s)'],
  requestTimeout: ['<duration>', 'time a client has to send its whole request (default 60s)'],
  idleTimeout: ['<duration>', 'idle keep-alive connections are closed after this (default 65s)'],
  store: ['<url>', STORE_HELP.replace(/; env .*/, '')],
  principalHeader: ['<name>', 'header whose hashed value is the principal (default authorization)'],
  principalCookie: ['<name>', 'take the principal from this cookie instead (its value, hashed)'],
  jwtJwks: ['<file|url>', "take the principal from a JWT's sub, verified with these public keys"],
  jwtIssuer: ['<iss>', 'the JWT must have this issuer'],
  jwtAudience: ['<aud>', 'the JWT must name this audience'],
  jwtHeader: ['<name>', 'header that carries the JWT, Bearer or bare (default authorization)'],
  allowAnonymous: ['', 'run keyed requests without a principal in ONE shared scope (default: 401)'],
  otel: [
    '',
    'also report spans and metrics through OpenTelemetry (preload an SDK; see docs/opentelemetry.md)',
  ],
  tenantHeader: ['<name>', 'header that names the tenant (default: none)'],
  keyBodyField: ['<field>', 'also take the key from this top-level JSON body field (AIP-155 request_id)'],
  keyQueryParam: ['<name>', 'also take the key from this query parameter (EC2-style ClientToken)'],
  lease: ['<duration>', 'how long a claim is held while the upstream works (default 30s)'],
  retention: ['<duration>', 'how long results are replayed (default 24h)'],
  wait: ['<duration>', 'hold concurrent duplicates this long, then replay (default 0: 409 at once)'],
  maxBody: ['<size>', 'largest covered request body (default 1mb)'],
  maxStored: ['<size>', 'largest response body kept for replay (default 1mb)'],
  storeTimeout: ['<duration>', 'timeout of each store call (default 1s)'],
  upstreamTimeout: ['<duration>', 'upstream headers and body timeout (default 30s)'],
  drain: ['<duration>', 'how long SIGTERM waits for in-flight requests (default 10s)'],
  forwardKey: ['<mode>', 'Idempotency-Key sent upstream: derived, original or none (default derived)'],
  upstreamDedupes: [
    '',
    'the upstream de-duplicates on the forwarded key: free the key after a timeout, reset or 5xx (default: hold it, 409)',
  ],
  replayHeaders: ['<names>', 'extra response headers to replay, comma-separated'],
  logLevel: ['<level>', 'fatal, error, warn, info, debug or silent (default info)'],
};

export function defineGateway(program: Command): void {
  const command = program
    .command('gateway')
    .description('Run a reverse proxy that gives any HTTP API safe retries with Idempotency-Key.')
    .addOption(
      new Option('--config <file>', 'JSON file with settings (leaseMs-style numbers) and per-route rules'),
    );
  for (const field of FIELDS) {
    if (field.flag === undefined) continue;
    const [placeholder, help] = FLAGS[field.flag] as [string, string];
    const flag = field.flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    command.addOption(new Option(`--${flag}${placeholder ? ` ${placeholder}` : ''}`, help));
  }
  command.addHelpText(
    'after',
    `
Every flag is also an environment variable: IDEMKIT_ and the flag in capitals (--max-body → IDEMKIT_MAX_BODY;
IDEMKIT_CONFIG for --config).
The fingerprint secret comes from IDEMKIT_SECRET only (required for postgres:// and redis://).
The principal (whose keys and results a request may see) comes from ONE of: a header (--principal-header,
default Authorization), a cookie (--principal-cookie), or a verified JWT's sub (--jwt-jwks and/or an HS256
secret in IDEMKIT_JWT_SECRET). Keyed requests without one get 401 principal-required unless --allow-anonymous.
Precedence: flag > environment > config file > default. Durations: 500ms, 30s, 2m, 24h. Sizes: 512kb, 1mb.

Example:
  idemkit gateway --upstream http://127.0.0.1:8080 --port 8787 --lease 30s
  curl -X POST localhost:8787/charges -H 'Idempotency-Key: 8e0f…' -d '{"amount":100}'`,
  );
  command.action(runGateway);
}

async function runGateway(flags: Record<string, string | boolean>): Promise<void> {
  const config = loadGatewayConfig({ flags, env: process.env });
  // Loaded here, not at the top: `--help` and usage errors should not pay for the server's modules.
  const [{ pino }, { startGateway }, { openStore }, { createPrincipalResolver }] = await Promise.all([
    import('pino'),
    import('../gateway/server.js'),
    import('../gateway/store-url.js'),
    import('../gateway/principal.js'),
  ]);
  // A JWKS file that is missing or holds no usable key is a usage error: say so before the store opens.
  await createPrincipalResolver(config);
  const logger = pino({
    level: config.logLevel,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
  const opened = await openStore(config.store, {
    logger,
    ...(config.secret === undefined ? {} : { secret: config.secret }),
  });
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  try {
    gateway = await startGateway({ config, store: opened.store, logger });
  } catch (error) {
    await opened.close();
    throw error;
  }
  logger.info({ store: opened.description }, 'store opened');

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting without draining');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal, drainMs: config.drainMs }, 'draining in-flight requests');
    // Drain first: in-flight requests still need the store to record their results.
    gateway
      .close()
      .then(() => opened.close())
      .then(
        () => {
          logger.info({}, 'stopped');
          process.exit(0);
        },
        (error: unknown) => {
          logger.error({ error: error instanceof Error ? error.message : String(error) }, 'shutdown failed');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
