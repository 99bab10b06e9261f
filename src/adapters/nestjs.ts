import type { DynamicModule, ExecutionContext, ModuleMetadata, Provider } from '@nestjs/common';
import {
  applyDecorators,
  createParamDecorator,
  Inject,
  Module,
  SetMetadata,
  UseInterceptors,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { HandlerContext } from '../core/decision.js';
import type { Idempotency } from '../core/engine.js';
import type { IdempotencyOptions } from '../core/options.js';
import { IDEMPOTENCY_SETUP, IdempotencyInterceptor } from './nestjs-interceptor.js';
import type { NestRequest } from './nestjs-platform.js';
import {
  checkedSettings,
  IDEMPOTENT_METADATA,
  type IdempotentSettings,
  type NestSetup,
  setupFor,
} from './nestjs-settings.js';
import { limitKeyedUploads } from './nestjs-upload-limit.js';

export type { WebhookHandler, WebhookReceiverOptions } from '../consumer/receive-webhook.js';
export type { HandlerContext } from '../core/decision.js';
export { IdempotencyInterceptor } from './nestjs-interceptor.js';
export { IDEMPOTENT_METADATA, type IdempotentSettings } from './nestjs-settings.js';
export { webhookReceiver } from './nestjs-webhook.js';

/**
 * What the interceptor adds to the framework request, for handlers that take `@Req()`:
 * `@Req() req: Request & IdempotentRequest`. `@IdempotencyContext()` gives the same object.
 */
export interface IdempotentRequest {
  /** Present while the request runs under an Idempotency-Key claim; `undefined` otherwise. */
  idempotency?: HandlerContext;
}

/** Inject the engine (`@Inject(IDEMPOTENCY_ENGINE) engine: Idempotency`), e.g. for `storeHealthy()`. */
export const IDEMPOTENCY_ENGINE = Symbol('idemkit.nestjs.engine');

/**
 * Covers a handler (or every handler of a controller) with the IdempotencyInterceptor, with its
 * own values for options the engine takes per request: `@Idempotent({ required: false })`.
 * `@Idempotent(false)` leaves a handler uncovered where the interceptor is bound more widely
 * (globally, or on its controller). Unknown option names throw where the decorator is applied.
 * @example
 * @Post() @Idempotent() create(@Body() dto: PaymentDto, @IdempotencyContext() ctx?: HandlerContext) {}
 */
export function Idempotent(settings: IdempotentSettings = {}): ClassDecorator & MethodDecorator {
  const checked = checkedSettings(settings);
  if (checked === false) return SetMetadata(IDEMPOTENT_METADATA, false);
  return applyDecorators(SetMetadata(IDEMPOTENT_METADATA, checked), UseInterceptors(IdempotencyInterceptor));
}

/**
 * The handler's context under a claim (`downstreamKey()`, `signal`, `fencingToken`,
 * `effectsStarted()`), or `undefined` when idemkit let the request through. The same object is
 * `req.idempotency`.
 * @example
 * pay(@IdempotencyContext() ctx: HandlerContext | undefined) { return charge(ctx?.downstreamKey()) }
 */
export const IdempotencyContext: () => ParameterDecorator = createParamDecorator(
  function idempotencyContextOf(_data: unknown, context: ExecutionContext): HandlerContext | undefined {
    return context.switchToHttp().getRequest<NestRequest>().idempotency;
  },
);

/** What `forRootAsync()` takes: a factory of the options (or an engine), with its injections. */
export interface IdempotencyModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  useFactory: (
    ...args: never[]
  ) => IdempotencyOptions | Idempotency | Promise<IdempotencyOptions | Idempotency>;
  inject?: NonNullable<Extract<Provider, { useFactory: unknown }>['inject']>;
}

/**
 * Registers the engine for the IdempotencyInterceptor, once, in the root module (it is global).
 * Pass options, or an engine from `createIdempotency()` to share one with other code; an engine
 * the module created is closed with the application.
 * @example
 * @Module({ imports: [IdempotencyModule.forRoot({ store: memoryStore() })] })
 */
export class IdempotencyModule {
  private readonly setup: NestSetup;
  private readonly adapterHost: HttpAdapterHost;

  constructor(setup: NestSetup, adapterHost: HttpAdapterHost) {
    this.setup = setup;
    this.adapterHost = adapterHost;
  }

  static forRoot(options: IdempotencyOptions | Idempotency): DynamicModule {
    return moduleWith({ provide: IDEMPOTENCY_SETUP, useFactory: () => setupFor(options) });
  }

  static forRootAsync(options: IdempotencyModuleAsyncOptions): DynamicModule {
    const factory = options.useFactory as (...args: unknown[]) => ReturnType<typeof options.useFactory>;
    return moduleWith(
      {
        provide: IDEMPOTENCY_SETUP,
        useFactory: async (...args: unknown[]) => setupFor(await factory(...args)),
        inject: options.inject ?? [],
      },
      options.imports,
    );
  }

  /** Before the first request: on Express, keyed uploads over the limit are refused early. */
  onModuleInit(): void {
    limitKeyedUploads(this.adapterHost.httpAdapter, this.setup.engine);
  }

  /** Stops the sweeper of an engine the module created; a shared engine is its owner's to close. */
  async onModuleDestroy(): Promise<void> {
    if (!this.setup.shared) await this.setup.engine.close();
  }
}

Module({})(IdempotencyModule);
Inject(IDEMPOTENCY_SETUP)(IdempotencyModule, undefined, 0);
Inject(HttpAdapterHost)(IdempotencyModule, undefined, 1);

function moduleWith(setup: Provider, imports: ModuleMetadata['imports'] = []): DynamicModule {
  return {
    module: IdempotencyModule,
    global: true,
    imports,
    providers: [
      setup,
      { provide: IDEMPOTENCY_ENGINE, useFactory: (s: NestSetup) => s.engine, inject: [IDEMPOTENCY_SETUP] },
      IdempotencyInterceptor,
    ],
    exports: [IDEMPOTENCY_SETUP, IDEMPOTENCY_ENGINE, IdempotencyInterceptor],
  };
}
