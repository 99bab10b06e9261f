import { readFile } from 'node:fs/promises';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  type JSONWebKeySet,
  type JWK,
  type JWTVerifyGetKey,
  errors as joseErrors,
  jwtVerify,
} from 'jose';
import type { Decision } from '../core/decision.js';
import type { Idempotency } from '../core/engine.js';
import { problemResponse } from '../core/problem.js';
import { type EngineRequest, type HeaderInput, headerValue, headerValues } from '../core/request.js';
import { hashCredential } from '../core/scope.js';
import { ConfigError } from './config-error.js';
import type { GatewayConfig } from './types.js';

/*
 * Who the caller is, at the gateway: a header (hashed), a named cookie (its value hashed), or the
 * `sub` of a verified JWT (issuer and subject hashed). One source is in force at a time. A request
 * that carries a credential the source cannot use (a token that does not verify, a cookie sent
 * twice with two values) is refused; it never falls back to the anonymous scope.
 */

/** Seconds of clock skew allowed on `exp` and `nbf`, between the token's issuer and this host. */
export const JWT_CLOCK_TOLERANCE_SECONDS = 30;

const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'];
/** What a remote JWKS may hold; its keys are unknown at startup. Never an HMAC algorithm, never `none`. */
const ASYMMETRIC_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
];

/**
 * Thrown by a principal resolver for a request whose credential is present but unusable.
 * `refusingUnusableCredentials` turns it into a problem response; the engine never sees it
 * as a store or handler failure.
 */
export class PrincipalRejected extends Error {
  override readonly name = 'PrincipalRejected';
  readonly code: 'principal-required' | 'upstream-unavailable';
  readonly detail: string;
  /** For the log, never for the client: a jose error code or a short tag, not token content. */
  readonly reason: string | undefined;

  constructor(code: PrincipalRejected['code'], detail: string, reason?: string) {
    super(detail);
    this.code = code;
    this.detail = detail;
    this.reason = reason;
  }
}

export interface PrincipalResolver {
  /** The hashed principal, or `undefined` when the request carries none (anonymous). */
  resolve(request: EngineRequest, routeHeader: string): Promise<string | undefined> | string | undefined;
  /** For the startup log: `header authorization`, `cookie sid`, `jwt sub (jwks file ./keys.json)`. */
  readonly description: string;
}

/** Builds the resolver for the configured source; reads a JWKS file now, so a bad one stops startup. */
export async function createPrincipalResolver(config: GatewayConfig): Promise<PrincipalResolver> {
  const jwt = config.jwtJwks !== undefined || config.jwtSecret !== undefined;
  if (config.principalCookie !== undefined && jwt) {
    throw new ConfigError(
      'principalCookie and a JWT key (jwtJwks, jwtSecret) each choose where the principal comes from; keep one',
    );
  }
  if (config.principalCookie !== undefined || jwt) {
    const route = config.routes.findIndex((r) => r.principalHeader !== undefined);
    if (route !== -1) {
      throw new ConfigError(
        `routes[${route}].principalHeader: the principal comes from ${config.principalCookie !== undefined ? 'a cookie' : 'a JWT'}, not a header; remove the route's principalHeader or the other source`,
      );
    }
  }
  if (config.principalCookie !== undefined) return cookieResolver(config.principalCookie);
  if (jwt) return jwtResolver(config);
  return {
    resolve: (request, routeHeader) => hashCredential(headerValue(request.headers, routeHeader)) || undefined,
    description: `header ${config.principalHeader}`,
  };
}

function cookieResolver(name: string): PrincipalResolver {
  return {
    resolve(request) {
      const values = new Set(cookieValues(headerValues(request.headers, 'cookie'), name));
      values.delete('');
      if (values.size > 1) {
        // Two cookies of one name (a path-scoped one, or one planted from a sibling domain): the
        // API may take either as the caller, so no scope is safe to pick.
        throw new PrincipalRejected(
          'principal-required',
          `the ${name} cookie was sent more than once with different values; send one`,
          'cookie-ambiguous',
        );
      }
      const [value] = values;
      return value === undefined ? undefined : hashCredential(value);
    },
    description: `cookie ${name}`,
  };
}

/**
 * The values of cookie `name` in Cookie field lines (`a=1; sid=x`), RFC 6265 §4.2.1. Names are
 * case-sensitive; a DQUOTE-wrapped value is unwrapped (§4.1.1); pairs without `=` are skipped.
 */
export function cookieValues(fieldLines: readonly string[], name: string): string[] {
  const values: string[] = [];
  for (const line of fieldLines) {
    for (const pair of line.split(';')) {
      const eq = pair.indexOf('=');
      if (eq === -1 || pair.slice(0, eq).trim() !== name) continue;
      let value = pair.slice(eq + 1).trim();
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
      values.push(value);
    }
  }
  return values;
}

async function jwtResolver(config: GatewayConfig): Promise<PrincipalResolver> {
  const header = config.jwtHeader ?? 'authorization';
  const secret = config.jwtSecret === undefined ? undefined : new TextEncoder().encode(config.jwtSecret);
  const remote = config.jwtJwks !== undefined && /^https?:\/\//i.test(config.jwtJwks);
  let jwks: JWTVerifyGetKey | undefined;
  let jwksAlgorithms: string[] = [];
  if (config.jwtJwks !== undefined && remote) {
    jwks = createRemoteJWKSet(new URL(config.jwtJwks));
    jwksAlgorithms = ASYMMETRIC_ALGORITHMS;
  } else if (config.jwtJwks !== undefined) {
    const set = await readJwksFile(config.jwtJwks);
    jwks = createLocalJWKSet(set);
    jwksAlgorithms = [...new Set(set.keys.flatMap((key) => algorithmsOf(key, config.jwtJwks as string)))];
  }
  const algorithms = [...(secret ? HMAC_ALGORITHMS : []), ...jwksAlgorithms];
  // The token's own `alg` picks the key kind; `algorithms` above has already refused any other.
  const key: JWTVerifyGetKey = async (protectedHeader, token) => {
    if (protectedHeader.alg.startsWith('HS') && secret) return secret;
    if (!protectedHeader.alg.startsWith('HS') && jwks) return jwks(protectedHeader, token);
    throw new joseErrors.JOSEAlgNotAllowed('no key for this algorithm');
  };

  const keys = [
    ...(config.jwtJwks === undefined ? [] : [`jwks ${remote ? 'url' : 'file'} ${config.jwtJwks}`]),
    ...(secret ? ['IDEMKIT_JWT_SECRET'] : []),
  ];
  const checks = [
    ...(config.jwtIssuer === undefined ? [] : [`iss ${config.jwtIssuer}`]),
    ...(config.jwtAudience === undefined ? [] : [`aud ${config.jwtAudience}`]),
  ];
  return {
    description: `jwt sub (${[...keys, ...checks].join(', ')}; from ${header})`,
    async resolve(request) {
      const token = tokenFrom(request.headers, header);
      if (token === undefined) return undefined;
      let payload: { iss?: unknown; sub?: unknown };
      try {
        ({ payload } = await jwtVerify(token, key, {
          algorithms,
          clockTolerance: JWT_CLOCK_TOLERANCE_SECONDS,
          // A token without `exp` would scope requests forever; the caller is the subject.
          requiredClaims: ['sub', 'exp'],
          ...(config.jwtIssuer === undefined ? {} : { issuer: config.jwtIssuer }),
          ...(config.jwtAudience === undefined ? {} : { audience: config.jwtAudience }),
        }));
      } catch (error) {
        throw rejection(error, remote);
      }
      if (typeof payload.sub !== 'string' || payload.sub === '') {
        throw new PrincipalRejected('principal-required', NOT_VERIFIED, 'sub-not-a-string');
      }
      // Hash (issuer, subject), never the token: tokens rotate, the subject is the caller.
      return hashCredential(
        JSON.stringify([typeof payload.iss === 'string' ? payload.iss : '', payload.sub]),
      );
    },
  };
}

const NOT_VERIFIED =
  'the bearer token did not verify (signature, expiry, issuer or audience); authenticate again';

/** The token in `header`: `Bearer <token>`, or on a header other than Authorization the bare token. */
function tokenFrom(headers: HeaderInput, header: string): string | undefined {
  const lines = headerValues(headers, header);
  if (lines.length === 0) return undefined;
  if (lines.length > 1) {
    throw new PrincipalRejected(
      'principal-required',
      `send one ${header} header, not ${lines.length}`,
      'many',
    );
  }
  const value = (lines[0] as string).trim();
  if (value === '') return undefined;
  const bearer = /^bearer[ \t]+(\S+)$/i.exec(value);
  if (bearer) return bearer[1];
  if (header !== 'authorization' && !/\s/.test(value)) return value;
  throw new PrincipalRejected(
    'principal-required',
    `the ${header} header carries no Bearer token`,
    'no-bearer',
  );
}

/** A key set that could not be fetched is the gateway's problem (502, retry); anything else is the token's. */
function rejection(error: unknown, remote: boolean): PrincipalRejected {
  const code = error instanceof joseErrors.JOSEError ? error.code : 'error';
  const keySetDown =
    remote &&
    (!(error instanceof joseErrors.JOSEError) ||
      error instanceof joseErrors.JWKSTimeout ||
      error instanceof joseErrors.JWKSInvalid ||
      code === 'ERR_JOSE_GENERIC');
  if (keySetDown) {
    return new PrincipalRejected(
      'upstream-unavailable',
      'the keys that verify the bearer token could not be fetched; retry later',
      code,
    );
  }
  return new PrincipalRejected('principal-required', NOT_VERIFIED, code);
}

async function readJwksFile(path: string): Promise<JSONWebKeySet> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === undefined ? 'not JSON' : code;
    throw new ConfigError(`--jwt-jwks: cannot read the JWKS file ${path} (${why}); check the path`, {
      cause: error,
    });
  }
  const keys = (json as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new ConfigError(
      `--jwt-jwks: ${path} must hold a JSON Web Key Set, { "keys": [ … ] }, with one key or more`,
    );
  }
  return json as JSONWebKeySet;
}

/** The algorithms a public key may verify: its `alg`, or what its type and curve allow. */
function algorithmsOf(key: JWK, path: string): string[] {
  if (key.kty === 'oct' || key.alg?.startsWith('HS') || key.alg === 'none') {
    throw new ConfigError(
      `--jwt-jwks: ${path} holds a symmetric key; a JWKS holds public keys, an HMAC secret goes in IDEMKIT_JWT_SECRET`,
    );
  }
  if (key.d !== undefined) {
    throw new ConfigError(`--jwt-jwks: ${path} holds a private key; give the gateway the public keys only`);
  }
  if (key.alg !== undefined) return [key.alg];
  if (key.kty === 'RSA') return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
  if (key.kty === 'EC' && key.crv === 'P-256') return ['ES256'];
  if (key.kty === 'EC' && key.crv === 'P-384') return ['ES384'];
  if (key.kty === 'EC' && key.crv === 'P-521') return ['ES512'];
  if (key.kty === 'OKP' && key.crv === 'Ed25519') return ['EdDSA', 'Ed25519'];
  throw new ConfigError(`--jwt-jwks: ${path} holds a key of type ${String(key.kty)} that cannot verify JWTs`);
}

/**
 * The engine with principal rejections answered: a `PrincipalRejected` thrown while the engine
 * asks for the principal becomes a problem response (401 or 502) and a `reject` event. Nothing
 * is claimed before the principal is known, so there is nothing to release.
 */
export function refusingUnusableCredentials(
  engine: Idempotency,
  onRejected: (error: PrincipalRejected) => void = () => {},
): Idempotency {
  function refused(error: unknown): Decision {
    if (!(error instanceof PrincipalRejected)) throw error;
    onRejected(error);
    const response = problemResponse(error.code, error.detail);
    engine.options.onEvent?.({ type: 'reject', code: error.code, status: response.status });
    return { kind: 'reject', code: error.code, response };
  }
  // A `then` on the engine's own promise: no second async frame per request.
  const begin = (request: EngineRequest): Promise<Decision> => engine.begin(request).then(undefined, refused);
  return { ...engine, begin, options: engine.options, close: () => engine.close() };
}

/** The text of the startup log's `principal` field. */
export function describePrincipal(resolver: PrincipalResolver, config: GatewayConfig): string {
  return config.allowAnonymous
    ? `${resolver.description}; ANONYMOUS keyed requests allowed (shared scope)`
    : resolver.description;
}
