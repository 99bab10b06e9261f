import type { AddressInfo } from 'node:net';
import {
  All,
  Controller,
  type DynamicModule,
  type INestApplication,
  type ModuleMetadata,
  type NestApplicationOptions,
  Req,
  Res,
  StreamableFile,
  type Type,
} from '@nestjs/common';
import { type AbstractHttpAdapter, APP_INTERCEPTOR, NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import {
  type HandlerContext,
  IdempotencyContext,
  IdempotencyInterceptor,
  IdempotencyModule,
} from '../../src/adapters/nestjs.js';
import type { IdempotencyOptions } from '../../src/core/options.js';
import type { Started } from '../../src/testing/http-harness.js';
import type { ReferenceApp } from '../../src/testing/reference-app.js';

export type NestPlatform = 'express' | 'fastify';

type HttpAdapter = AbstractHttpAdapter;

/** Express's `req` or Fastify's `request`: what the bridge reads. */
interface AnyRequest {
  method: string;
  headers: Record<string, string | string[] | undefined>;
  originalUrl?: string;
  url: string;
  rawBody?: Buffer;
}

/**
 * The HTTP contract's start() for one platform: a real Nest app on 127.0.0.1, created the way the
 * docs say (`rawBody: true`), `IdempotencyModule.forRoot(options)` with exactly the contract's
 * options and the interceptor bound globally, in front of one catch-all controller that hands the
 * request to the contract's reference app.
 */
export function nestReference(platform: NestPlatform) {
  return function startNestReference(setup: {
    app: ReferenceApp;
    options: IdempotencyOptions;
  }): Promise<Started> {
    const adapter: { current?: HttpAdapter } = {};
    const controller = referenceController(setup.app, adapter);
    return startNest(platform, {
      imports: [IdempotencyModule.forRoot(setup.options)],
      controllers: [controller],
      providers: [{ provide: APP_INTERCEPTOR, useExisting: IdempotencyInterceptor }],
    }).then((started) => {
      adapter.current = started.nest.getHttpAdapter() as AbstractHttpAdapter;
      return started;
    });
  };
}

/**
 * A controller whose one route runs the reference app and answers through Nest's own idiom: the
 * status and every header line through the platform's HTTP adapter (the Set-Cookie lines one by
 * one), the body as a StreamableFile of its bytes, which Nest pipes into the response. That is
 * what the interceptor captures. A throw from the reference app (POST /throw) rejects the handler,
 * the Nest way.
 */
export function referenceController(reference: ReferenceApp, adapter: { current?: HttpAdapter }): Type {
  @Controller()
  class ReferenceController {
    @All(':route')
    async route(
      @Req() req: AnyRequest,
      @Res({ passthrough: true }) res: object,
      @IdempotencyContext() ctx: HandlerContext | undefined,
    ): Promise<StreamableFile | undefined> {
      const http = adapter.current as HttpAdapter;
      const request = webRequest(req);
      const response = ctx ? await reference.fetch(request, ctx) : await reference.fetch(request);
      http.status(res, response.status);
      for (const [name, value] of response.headers)
        if (name !== 'set-cookie') http.setHeader(res, name, value);
      for (const cookie of response.headers.getSetCookie()) http.appendHeader(res, 'set-cookie', cookie);
      if (!response.body) return undefined;
      return new StreamableFile(new Uint8Array(await response.arrayBuffer()));
    }
  }
  return ReferenceController;
}

const HOP = new Set(['host', 'connection', 'keep-alive', 'content-length', 'transfer-encoding']);

function webRequest(req: AnyRequest): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (HOP.has(name) || value === undefined) continue;
    for (const line of Array.isArray(value) ? value : [value]) headers.append(name, line);
  }
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
  return new Request(`http://${req.headers.host}${req.originalUrl ?? req.url}`, {
    method: req.method,
    headers,
    body: hasBody ? new Uint8Array(req.rawBody ?? new Uint8Array(0)) : null,
  });
}

export interface StartedNest extends Started {
  nest: INestApplication;
}

/**
 * Creates and starts a Nest app for `metadata` on 127.0.0.1, port 0, on either platform, with
 * `rawBody: true` as the docs require; close() ends open connections too. Express's
 * `x-powered-by` is off (a hardening most apps apply; Express would add it to replays too).
 */
export async function startNest(
  platform: NestPlatform,
  metadata: ModuleMetadata,
  options: {
    logger?: NestApplicationOptions['logger'];
    /** @default true, as the docs require */
    rawBody?: boolean;
    /** Runs before listen(): CORS, global pipes, … */
    configure?: (nest: INestApplication) => void;
  } = {},
): Promise<StartedNest> {
  const root: DynamicModule = { module: class AppModule {}, ...metadata };
  const appOptions = {
    rawBody: options.rawBody ?? true,
    logger: options.logger ?? false,
    forceCloseConnections: true,
  };
  let nest: INestApplication;
  if (platform === 'fastify') {
    const fastify = await NestFactory.create<NestFastifyApplication>(root, new FastifyAdapter(), appOptions);
    // The contract sends `content-type: application/json` with every method, OPTIONS without a
    // body too, which Fastify's own JSON parser refuses (400) before any route: empty is no body.
    fastify.useBodyParser('application/json', {}, (_request, body, done) => {
      try {
        done(null, body.length === 0 ? undefined : JSON.parse(body.toString('utf8')));
      } catch (error) {
        done(error as Error, undefined);
      }
    });
    nest = fastify;
  } else {
    nest = await NestFactory.create(root, appOptions);
    nest.getHttpAdapter().getInstance().disable('x-powered-by');
  }
  options.configure?.(nest);
  await nest.listen(0, '127.0.0.1');
  const { port } = nest.getHttpServer().address() as AddressInfo;
  return {
    nest,
    url: `http://127.0.0.1:${port}`,
    close: () => nest.close(),
  };
}
