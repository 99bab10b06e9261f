import type { IdempotencyEvent } from '../core/events.js';
import { DEFAULTS, type IdempotencyOptions } from '../core/options.js';
import type { IdempotencyStore } from '../core/store.js';

/**
 * One per-route rule of the gateway's config file. Routes match by path pattern (`/charges`,
 * `/orders/*`: `*` matches one or more characters) and, when `methods` is given, by method;
 * the first match wins. A request that matches no route uses the top-level settings.
 */
export interface GatewayRoute {
  path: string;
  /** Covered methods on this route; `[]` passes the route through untouched. @default ['POST', 'PATCH'] */
  methods?: string[];
  required?: boolean;
  /** Header whose value (hashed) is the principal. @default the top-level principalHeader */
  principalHeader?: string;
  leaseMs?: number;
  retentionMs?: number;
  /** Hold concurrent duplicates up to this long; 0 answers 409 at once. */
  waitMs?: number;
  /** Response headers replayed on this route besides the allowlist and the top-level list. */
  replayHeaders?: string[];
  /**
   * This route's upstream de-duplicates on the forwarded Idempotency-Key, so an upstream failure
   * that may have run the operation (a timeout or reset after the request was sent, a 5xx) frees
   * the key: the retry carries the same key and the upstream absorbs it. Without it such a
   * failure holds the key (409 `outcome-uncertain`). @default the top-level upstreamDedupes
   */
  upstreamDedupes?: boolean;
}

/** The gateway's whole configuration after flags, environment and config file are merged. */
export interface GatewayConfig {
  upstream: string;
  host: string;
  port: number;
  /** Address of the admin listener (health, metrics); loopback unless an operator opens it. */
  adminHost: string;
  /** Port of the admin listener; 0 picks a free one. */
  adminPort: number;
  /** Lowercase request paths (rules, scope, forwarded path): for case-insensitive upstreams. */
  foldCase: boolean;
  /** Drop one trailing slash (`/charges/` → `/charges`): for upstreams that ignore it. */
  foldTrailingSlash: boolean;
  /** Peers (IPs, CIDRs) whose Forwarded / X-Forwarded-* / X-Real-IP headers are kept; [] trusts none. */
  trustedProxies: string[];
  /** A client must send its request headers within this. */
  headerTimeoutMs: number;
  /** A client must send its whole request (headers and body) within this. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  idleTimeoutMs: number;
  /** Store URL: `sqlite:./path.db`, `memory:`, `postgres://…`, `redis://…`, `redis-cluster://h:p,h:p`. */
  store: string;
  /** Fingerprint secret; required for PostgreSQL and Redis, generated and kept for SQLite. */
  secret?: string;
  /** Header whose value (hashed) is the principal, when no cookie or JWT source is configured. */
  principalHeader: string;
  /** Cookie whose value (hashed) is the principal. */
  principalCookie?: string;
  /** JWKS for verifying a JWT whose `sub` is the principal: a file path or an http(s) URL. */
  jwtJwks?: string;
  /** HS256/384/512 secret for that JWT (from IDEMKIT_JWT_SECRET or the config file, never a flag). */
  jwtSecret?: string;
  /** Required `iss` of the JWT. */
  jwtIssuer?: string;
  /** Required `aud` of the JWT. */
  jwtAudience?: string;
  /** Header carrying the JWT (`Bearer <token>` or the bare token). @default 'authorization' */
  jwtHeader?: string;
  tenantHeader?: string;
  /** Run keyed requests without a principal in one shared anonymous scope instead of answering 401. */
  allowAnonymous: boolean;
  /**
   * OpenTelemetry: a span per keyed request, child spans for store calls, and counters, through
   * `@opentelemetry/api` and whatever SDK the process registered (OTLP exporters configured by
   * the standard OTEL_* variables). The Prometheus endpoint stays. @default false
   */
  otel: boolean;
  /** AIP-155 carrier: a top-level JSON body field holding the key when the header is absent. */
  keyBodyField?: string;
  /** EC2-style carrier: a query parameter holding the key when the header is absent. */
  keyQueryParam?: string;
  leaseMs: number;
  retentionMs: number;
  waitMs: number;
  maxBodyBytes: number;
  maxStoredBytes: number;
  storeTimeoutMs: number;
  upstreamTimeoutMs: number;
  drainMs: number;
  /** Every route's upstream de-duplicates on the forwarded Idempotency-Key (see GatewayRoute). */
  upstreamDedupes: boolean;
  /** What the upstream receives as Idempotency-Key. */
  forwardKey: 'derived' | 'original' | 'none';
  replayHeaders: string[];
  routes: GatewayRoute[];
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'silent';
}

/** The gateway's own settings; the engine's (lease, retention, limits, timeouts) are core's defaults. */
export const GATEWAY_DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  port: 8787,
  adminHost: '127.0.0.1',
  adminPort: 8788,
  foldCase: false,
  foldTrailingSlash: false,
  trustedProxies: [] as string[],
  headerTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  // Longer than the 60 s idle timeout of common load balancers, so the gateway is not the side
  // that closes a connection the balancer is about to reuse.
  idleTimeoutMs: 65_000,
  store: 'sqlite:./.idemkit/idemkit.db',
  principalHeader: 'authorization',
  allowAnonymous: false,
  otel: false,
  leaseMs: DEFAULTS.leaseMs,
  retentionMs: DEFAULTS.retentionMs,
  waitMs: 0,
  maxBodyBytes: DEFAULTS.maxBodyBytes,
  maxStoredBytes: DEFAULTS.maxStoredBytes,
  storeTimeoutMs: DEFAULTS.storeTimeoutMs,
  upstreamTimeoutMs: 30_000,
  drainMs: 10_000,
  forwardKey: 'derived' as const,
  upstreamDedupes: false,
  logLevel: 'info' as const,
});

/** Minimal logger shape (pino fits); the gateway logs hashed keys only. */
export interface GatewayLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface StartGatewayOptions {
  config: GatewayConfig;
  /** An opened store (see `openStore`); the caller closes it after `close()`. */
  store: IdempotencyStore;
  logger?: GatewayLogger;
  /** Extra event sink, e.g. the demo's counters. */
  onEvent?: (event: IdempotencyEvent) => void;
  /** Engine options that override what the config derives (embedding, the contract suite). */
  engine?: Partial<IdempotencyOptions>;
}

export interface RunningGateway {
  /** `http://host:port` */
  url: string;
  /** `http://adminHost:adminPort`: `/_idemkit/health` and `/_idemkit/metrics`. */
  adminUrl: string;
  /** Stops accepting, drains in-flight requests up to `drainMs`, then closes the upstream pool. */
  close(): Promise<void>;
}
