/**
 * The NestJS apps of `npm run bench -- adapters` (decorators: this file is compiled by tsx with
 * the repo's tsconfig, `experimentalDecorators`). The controller is defined inside the factory
 * because `@Idempotent()` comes from the idemkit tree being measured, loaded at run time.
 */
import type { AddressInfo } from 'node:net';
import { Body, Controller, HttpCode, Module, Post, Res } from '@nestjs/common';
import { HttpAdapterHost, NestFactory } from '@nestjs/core';
import type { Idempotency } from '../../src/core/engine.js';
import type { Served } from './adapter-apps.js';
import { CHARGES_PATH } from './adapter-variants.js';

type NestModule = typeof import('../../src/adapters/nestjs.js');

interface Charge {
  amount: number;
  currency: string;
  ref: string;
}

let created = 0;

export async function nestApp(
  platform: 'express' | 'fastify',
  idem: { engine: Idempotency; nest: NestModule } | undefined,
): Promise<Served> {
  const idempotent: MethodDecorator = idem ? idem.nest.Idempotent() : () => {};
  let adapterHost: HttpAdapterHost | undefined;

  @Controller()
  class ChargesController {
    @Post(CHARGES_PATH.slice(1))
    @HttpCode(201)
    @idempotent
    create(@Body() charge: Charge, @Res({ passthrough: true }) res: unknown) {
      const id = `ch_${++created}`;
      const http = adapterHost?.httpAdapter;
      http?.setHeader(res, 'location', `${CHARGES_PATH}/${id}`);
      http?.setHeader(res, 'x-charge-id', id);
      http?.setHeader(res, 'set-cookie', `last_charge=${id}; Path=/; HttpOnly`);
      return { id, ref: charge.ref, amount: charge.amount, currency: charge.currency, status: 'succeeded' };
    }
  }

  @Module({
    imports: idem ? [idem.nest.IdempotencyModule.forRoot(idem.engine)] : [],
    controllers: [ChargesController],
  })
  class BenchModule {}

  const options = { rawBody: true, logger: false as const };
  const app =
    platform === 'express'
      ? await NestFactory.create(BenchModule, options)
      : await NestFactory.create(
          BenchModule,
          new (await import('@nestjs/platform-fastify')).FastifyAdapter(),
          options,
        );
  adapterHost = app.get(HttpAdapterHost);
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => app.close() };
}
