import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { flatHeaders, readNodeBody, sendEngineResponse } from '../adapters/node-http.js';
import { createIdempotency } from '../core/engine.js';
import { isIdempotencyError } from '../core/errors.js';
import { problemResponse } from '../core/problem.js';
import { type EngineRequest, headerValue } from '../core/request.js';
import type { EngineResponse } from '../core/response.js';
import { type AdminEndpoints, type AdminListener, startAdminListener } from './admin.js';
import { ConfigError } from './config-error.js';
import { createGatewayServer, listen } from './listener.js';
import { createGatewayMetrics } from './metrics.js';
import { normalizeTarget } from './path.js';
import { createPrincipalResolver, describePrincipal, refusingUnusableCredentials } from './principal.js';
import { createUpstream, type UpstreamAnswer } from './proxy.js';
import { coveredMethods, createRouteMatcher, type ResolvedRoute } from './routes.js';
import type { GatewayLogger, RunningGateway, StartGatewayOptions } from './types.js';
import { describeCause, UpstreamError, upstreamClassifier } from './upstream-outcome.js';

const SILENT: GatewayLogger = { info() {}, warn() {}, error() {}, debug() {} };

interface Native {
  req: IncomingMessage;
  route: ResolvedRoute;
}

const routeOf = (request: EngineRequest): ResolvedRoute => (request.native as Native).route;

/**
 * `idemkit gateway`: a reverse proxy that gives any HTTP API idemkit's HTTP contract.
 * Covered requests are buffered (up to `maxBodyBytes`), claimed, forwarded once with a derived
 * `Idempotency-Key`, stored and replayed; everything else streams through untouched.
 */
export async function startGateway({
  config,
  store,
  logger = SILENT,
  onEvent,
  engine: overrides = {},
}: StartGatewayOptions): Promise<RunningGateway> {
  // First: a bad JWKS file is a configuration error, before anything is opened.
  const principal = await createPrincipalResolver(config);
  const metrics = createGatewayMetrics();
  const matchRoute = createRouteMatcher(config);
  const upstream = createUpstream(config.upstream, config.upstreamTimeoutMs, config.trustedProxies);
  const upstreamAnswers = upstreamClassifier();
  const otel = config.otel ? await loadOpenTelemetry() : undefined;
  const timedStore = metrics.timed(overrides.store ?? store);
  const engineWithoutRefusals = (otel?.instrumentEngine ?? noInstrumentation)(
    createIdempotency({
      ...(config.secret === undefined ? {} : { secret: config.secret }),
      methods: coveredMethods(config),
      required: (req) => routeOf(req).required,
      principal: (_native, req) => principal.resolve(req, routeOf(req).principalHeader),
      ...(config.tenantHeader === undefined
        ? {}
        : {
            tenant: (_native: unknown, req: EngineRequest) =>
              headerValue(req.headers, config.tenantHeader as string),
          }),
      requirePrincipal: !config.allowAnonymous,
      keyFrom: {
        ...(config.keyBodyField === undefined ? {} : { bodyField: config.keyBodyField }),
        ...(config.keyQueryParam === undefined ? {} : { queryParam: config.keyQueryParam }),
      },
      leaseMs: (req) => routeOf(req).leaseMs,
      retentionMs: (req) => routeOf(req).retentionMs,
      wait: (req) => routeOf(req).waitMs,
      maxBodyBytes: config.maxBodyBytes,
      maxStoredBytes: config.maxStoredBytes,
      storeTimeoutMs: config.storeTimeoutMs,
      replayHeaders: (req) => routeOf(req).replayHeaders,
      classify: (response, req) => upstreamAnswers.classify(response, routeOf(req).upstreamDedupes),
      onWarning: (message) => logger.warn({}, message),
      ...overrides,
      store: otel ? otel.instrumentStore(timedStore) : timedStore,
      onEvent(event) {
        metrics.observe(event);
        onEvent?.(event);
        overrides.onEvent?.(event);
        if (event.type === 'store-error' || event.type === 'lease-lost' || event.type === 'non-durable') {
          const { error, ...rest } = event as { error?: unknown };
          logger.warn({ ...rest, error: error instanceof Error ? error.message : undefined }, event.type);
        }
      },
    }),
  );
  // A credential that is present but unusable (a token that does not verify) is refused, never anonymous.
  const engine = refusingUnusableCredentials(engineWithoutRefusals, (rejected) =>
    logger.debug({ code: rejected.code, reason: rejected.reason }, 'credential refused'),
  );

  let inFlight = 0;
  let drained: (() => void) | undefined;
  const requestClosed = () => {
    inFlight--;
    if (inFlight === 0) drained?.();
  };
  const server = createGatewayServer(config, onRequest, requestClosed);

  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    inFlight++;
    handle(req, res).catch((error: unknown) => {
      // A request cut off mid-body (timeout, broken framing, client gone) is no gateway failure;
      // the listener has answered it already.
      if (req.destroyed && !req.complete) {
        logger.debug({ error: error instanceof Error ? error.message : String(error) }, 'request cut off');
        return;
      }
      logger.error({ error: error instanceof Error ? error.message : String(error) }, 'request failed');
      if (!res.headersSent) sendEngineResponse(res, problemResponse('upstream-unavailable'));
      else res.destroy();
    });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    // Node de-chunks `gzip, chunked` but leaves the gzip coding on the body: forwarded without its
    // Transfer-Encoding, the upstream would take compressed bytes for the body. Only plain chunked.
    const coding = req.headers['transfer-encoding'];
    if (coding !== undefined && coding.trim().toLowerCase() !== 'chunked') {
      return sendEngineResponse(
        res,
        problemResponse('malformed-request', 'only Transfer-Encoding: chunked is accepted'),
        true,
      );
    }
    // One path for the route rules, the scope and the upstream (path.ts); ambiguous ones are refused.
    const normalised = normalizeTarget(req.url ?? '', config);
    if (!normalised.ok)
      return sendEngineResponse(res, problemResponse('invalid-path', normalised.reason), true);
    const { path, query, target } = normalised;
    const route = matchRoute(method, path);
    if (!route.methods.has(method)) return upstream.streamThrough(req, res, target);

    const body = await readNodeBody(req, config.maxBodyBytes);
    if (body === undefined) return sendEngineResponse(res, problemResponse('payload-too-large'), true);
    const decision = await engine.begin({
      method,
      path,
      query,
      headers: req.headersDistinct,
      body,
      native: { req, route } satisfies Native,
    });
    switch (decision.kind) {
      case 'bypass': {
        // Nothing is stored: a budget of 0 streams any answer body straight through.
        let answer: UpstreamAnswer;
        try {
          answer = await upstream.forward(req, target, body, undefined, 0);
        } catch (error) {
          logger.warn(describeCause(error), 'upstream failed');
          return sendEngineResponse(
            res,
            problemResponse(isIdempotencyError(error) ? error.code : 'upstream-unavailable'),
          );
        }
        return sendAnswer(res, answer.response, answer);
      }
      case 'reject':
      case 'replay':
        return sendEngineResponse(res, decision.response);
      case 'execute': {
        const key =
          config.forwardKey === 'derived'
            ? decision.ctx.downstreamKey()
            : config.forwardKey === 'original'
              ? headerValue(req.headersDistinct, 'idempotency-key')
              : undefined;
        let answer: UpstreamAnswer;
        try {
          answer = await upstream.forward(req, target, body, key, engine.options.maxStoredBytes);
        } catch (error) {
          // Release only when nothing was sent; otherwise the upstream may have acted (F5), and
          // only an upstream that de-duplicates on the forwarded key can absorb a re-run.
          const mayHaveRun = !(error instanceof UpstreamError && !error.requestSent);
          const held = mayHaveRun && !route.upstreamDedupes;
          if (held) decision.ctx.effectsStarted();
          logger.warn(
            { key: decision.key, ...describeCause(error), mayHaveRun, keyHeld: held },
            'upstream failed',
          );
          return sendEngineResponse(res, (await decision.abort(error)).response);
        }
        // Persist before respond: a streamed answer's record is committed before its head is sent.
        const result = await decision.commit(upstreamAnswers.mark(answer.response));
        const passesOn =
          result.disposition === 'store' ||
          result.disposition === 'release' ||
          result.disposition === 'uncertain';
        if (!passesOn) {
          answer.stream?.destroy();
          return sendEngineResponse(res, result.response);
        }
        return sendAnswer(res, result.response, answer);
      }
    }
  }

  /** The upstream's answer: buffered in one write, or its head and then its streamed body. */
  async function sendAnswer(res: ServerResponse, response: EngineResponse, answer: UpstreamAnswer) {
    if (!answer.stream) return sendEngineResponse(res, response);
    const headers = flatHeaders(response.headers);
    if (answer.contentLength !== undefined) headers.push('content-length', answer.contentLength);
    res.writeHead(response.status, headers);
    try {
      await pipeline(answer.stream, res);
    } catch (error) {
      // The upstream failed mid-body or the client left; either way this answer is over.
      logger.warn(describeCause(error), 'streamed answer cut short');
      res.destroy();
    }
  }

  const adminEndpoints: AdminEndpoints = {
    metrics: async () => ({
      contentType: metrics.registry.contentType,
      body: await metrics.registry.metrics(),
    }),
    async health() {
      // The engine probes its own store (timed for the metrics) through its check state.
      const ok = await engine.storeHealthy();
      return { ok, body: { status: ok ? 'ok' : 'store-unavailable', store: store.name } };
    },
  };

  const url = await listen(server, config.port, config.host);
  let adminListener: AdminListener;
  try {
    adminListener = await startAdminListener(config.adminHost, config.adminPort, adminEndpoints);
  } catch (error) {
    await new Promise((resolve) => server.close(resolve));
    await upstream.close();
    throw error;
  }
  const adminUrl = adminListener.url;
  logger.info(
    {
      url,
      adminUrl,
      upstream: config.upstream,
      store: store.name,
      principal: describePrincipal(principal, config),
    },
    'idemkit gateway listening',
  );
  if (config.allowAnonymous) {
    logger.warn(
      {},
      "ANONYMOUS keyed requests allowed (shared scope): callers without a principal share each other's keys and results",
    );
  }

  return {
    url,
    adminUrl,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      if (inFlight > 0) {
        await Promise.race([
          new Promise<void>((resolve) => {
            drained = resolve;
          }),
          new Promise((resolve) => setTimeout(resolve, config.drainMs).unref()),
        ]);
      }
      server.closeAllConnections();
      await closed;
      await adminListener.close();
      await engine.close();
      await upstream.close();
    },
  };
}

const noInstrumentation = <T>(engine: T): T => engine;

/** `idemkit/otel`, loaded only with `otel: true`, so the gateway needs `@opentelemetry/api` only then. */
async function loadOpenTelemetry(): Promise<typeof import('../otel/index.js')> {
  try {
    return await import('../otel/index.js');
  } catch (error) {
    throw new ConfigError(
      `--otel needs the @opentelemetry/api package (npm install @opentelemetry/api, plus an SDK to export): ${(error as Error).message}`,
    );
  }
}
