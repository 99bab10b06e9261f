import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import { createIdempotency, type Idempotency } from '../core/engine.js';
import { IdempotencyConfigError } from '../core/errors.js';
import type { HandlerContext } from '../core/execution.js';
import type { IdempotencyOptions } from '../core/options.js';
import type { EngineRequest } from '../core/request.js';
import { wrapHandler } from './fastify-guards.js';
import { pluginHooks } from './fastify-hooks.js';
import {
  type IdempotencyRouteConfig,
  type RouteSettings,
  routeSettingsOf,
  withRouteSettings,
} from './fastify-route.js';
import { kState, type RequestState } from './fastify-state.js';

export type { WebhookHandler, WebhookReceiverOptions } from '../consumer/receive-webhook.js';
export type { HandlerContext } from '../core/execution.js';
export type { IdempotencyRouteConfig } from './fastify-route.js';
export { type FastifyWebhookOptions, webhookReceiver } from './fastify-webhook.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set while a keyed request runs under its claim: `downstreamKey()`, `signal`, `fencingToken`, … */
    idempotency?: HandlerContext;
  }
  interface FastifyContextConfig {
    /** `false` leaves the route uncovered; an object sets per-route options. */
    idempotency?: IdempotencyRouteConfig;
  }
}

/** Finds the caller (or tenant) of a request; receives Fastify's request. */
export type FastifyCaller = (
  request: FastifyRequest,
  engineRequest: EngineRequest,
) => string | undefined | Promise<string | undefined>;

/** idemkit's options, with `principal` and `tenant` typed for Fastify's request. */
export interface FastifyIdempotencyPluginOptions extends Omit<IdempotencyOptions, 'principal' | 'tenant'> {
  /** The authenticated caller, e.g. `(request) => request.user?.id`. @default SHA-256 of Authorization */
  principal?: FastifyCaller;
  tenant?: FastifyCaller;
}

/** The plugin's options: idemkit's options, or an engine from `createIdempotency()` to share. */
export type FastifyIdempotencyOptions = FastifyIdempotencyPluginOptions | Idempotency;

/** A route's settings as checked when the route was registered (see `checkRoute`). */
const kSettings = Symbol('idemkit.fastify.settings');
const PLUGIN_DEFAULTS: RouteSettings = Object.freeze({});

type RouteConfig = Record<string | symbol, unknown>;

/**
 * The Fastify plugin: unsafe requests with an `Idempotency-Key` run once, retries get the stored
 * answer. It covers the routes of the context that registers it (the whole app at the root, one
 * subtree in a child plugin); `config: { idempotency: false }` leaves a route out and an object
 * sets per-route options. The handler finds its context on `request.idempotency`.
 * @example
 * await app.register(idempotency, { store: memoryStore() })
 * app.post('/payments', async (request) => charge(request.body, request.idempotency?.downstreamKey()))
 */
async function idempotency(fastify: FastifyInstance, options: FastifyIdempotencyOptions): Promise<void> {
  if (fastify.hasRequestDecorator(kState)) {
    throw new IdempotencyConfigError(
      'idemkit/fastify is already registered in this context or a parent one; set per-route options through config.idempotency',
    );
  }
  const shared = 'begin' in options;
  // `native` is always the Fastify request here, so the typed callbacks fit the engine's.
  const engine = shared
    ? options
    : createIdempotency(withRouteSettings(options as IdempotencyOptions, routeOf));
  // A shared engine belongs to its creator; one made here ends with the app.
  if (!shared) fastify.addHook('onClose', () => engine.close());
  if (!fastify.hasRequestDecorator('idempotency')) fastify.decorateRequest('idempotency', undefined);
  fastify.decorateRequest(kState, null);

  // Routes declared before the plugin loaded were not seen by checkRoute: read their config once.
  const unseen = new WeakMap<object, RouteSettings | false>();
  function settingsOf(request: FastifyRequest): RouteSettings | false {
    const config = request.routeOptions.config as unknown as RouteConfig;
    const checked = config[kSettings] as RouteSettings | false | undefined;
    if (checked !== undefined) return checked;
    if (request.is404) return false;
    let settings = unseen.get(config);
    if (settings === undefined) {
      settings = routeSettingsOf(config, routeName(config.method, config.url), shared) ?? PLUGIN_DEFAULTS;
      unseen.set(config, settings);
    }
    return settings;
  }

  const hooks = pluginHooks(engine, settingsOf);
  fastify.addHook('preParsing', hooks.preParsing);
  fastify.addHook('preHandler', hooks.preHandler);
  fastify.addHook('onError', hooks.onError);
  fastify.addHook('onSend', hooks.onSend);

  /** A route registered from now on: its config is checked at startup, not at its first request. */
  fastify.addHook('onRoute', function checkRoute(route) {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (!methods.some((method) => engine.options.methods.has(method.toUpperCase()))) return;
    const config = route.config as unknown as RouteConfig | undefined;
    const settings = routeSettingsOf(config, routeName(route.method, route.url), shared) ?? PLUGIN_DEFAULTS;
    route.config = { ...config, [kSettings]: settings } as NonNullable<typeof route.config>;
    if (settings !== false) route.handler = wrapHandler(route.handler);
  });
}

/** The engine's per-request options read the route's settings from the Fastify request. */
function routeOf(request: EngineRequest): RouteSettings | undefined {
  return (request.native as { [kState]?: RequestState | null } | undefined)?.[kState]?.route;
}

function routeName(method: unknown, url: unknown): string {
  return `${Array.isArray(method) ? method.join(',') : String(method)} ${String(url)}`;
}

/*
 * Hooks must land in the context that registers the plugin (what fastify-plugin does, without
 * depending on it): registered at the root the plugin covers every route, registered inside a
 * child plugin only that child's routes. Without skip-override they would land in a context of
 * the plugin's own that holds no routes, and cover nothing.
 */
Object.assign(idempotency, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'idemkit',
  [Symbol.for('plugin-meta')]: { name: 'idemkit', fastify: '5.x' },
});

const plugin: FastifyPluginAsync<FastifyIdempotencyOptions> = idempotency;

export { plugin as idempotency };
export default plugin;
