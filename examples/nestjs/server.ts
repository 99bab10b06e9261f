import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { Body, Controller, Get, Module, NotFoundException, Param, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  type HandlerContext,
  IdempotencyContext,
  IdempotencyModule,
  Idempotent,
} from '../../src/adapters/nestjs.js';
import { memoryStore } from '../../src/index.js';

interface Payment {
  id: string;
  amount: number;
  currency: string;
  /** What a payment provider would get as its own idempotency key: stable across retries. */
  providerKey: string | undefined;
}

const payments = new Map<string, Payment>();

@Controller('payments')
class PaymentsController {
  @Post()
  @Idempotent()
  create(@Body() body: { amount: number; currency: string }, @IdempotencyContext() ctx?: HandlerContext) {
    const id = `pay_${payments.size + 1}`;
    const payment = { id, amount: body.amount, currency: body.currency, providerKey: ctx?.downstreamKey() };
    payments.set(id, payment);
    return payment;
  }

  @Get(':id')
  find(@Param('id') id: string) {
    const payment = payments.get(id);
    if (!payment) throw new NotFoundException(`no payment ${id}`);
    return payment;
  }
}

@Module({
  imports: [IdempotencyModule.forRoot({ store: memoryStore() })],
  controllers: [PaymentsController],
})
class AppModule {}

/** Serves the payments API at 127.0.0.1:PORT (0 picks a free port). */
export async function start(port = Number(process.env.PORT ?? 3000)) {
  // rawBody: idemkit fingerprints the bytes the client sent, not the parsed JSON.
  const app = await NestFactory.create(AppModule, { rawBody: true, logger: ['error', 'warn'] });
  await app.listen(port, '127.0.0.1');
  const { port: bound } = app.getHttpServer().address() as AddressInfo;
  return { url: `http://127.0.0.1:${bound}`, close: () => app.close() };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { url } = await start();
  console.log(`payments API on ${url}`);
}
