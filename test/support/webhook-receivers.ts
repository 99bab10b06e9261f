import { createHmac } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { All, Controller, Post, Req, Res } from '@nestjs/common';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import { webhookReceiver as expressReceiver, keepRawBody } from '../../src/adapters/express.js';
import { webhookReceiver as fastifyReceiver } from '../../src/adapters/fastify.js';
import { webhookReceiver as fetchReceiver } from '../../src/adapters/fetch.js';
import { webhookReceiver as honoReceiver } from '../../src/adapters/hono.js';
import { webhookReceiver as koaReceiver } from '../../src/adapters/koa.js';
import { webhookReceiver as nestReceiver } from '../../src/adapters/nestjs.js';
import type { WebhookHandler, WebhookReceiverOptions } from '../../src/consumer/index.js';
import { serveFetch } from '../../src/testing/serve-fetch.js';
import { startNest } from './nestjs-reference.js';

/*
 * Every framework's webhookReceiver on a real socket at 127.0.0.1, port 0, mounted the way its
 * JSDoc says: the endpoint is `${url}/webhooks`, other routes of the app parse JSON as usual.
 */

export interface StartedReceiver {
  /** The webhook endpoint's URL. */
  endpoint: string;
  stop(): Promise<void>;
}

export type StartReceiver = (
  options: WebhookReceiverOptions,
  handler: WebhookHandler,
) => Promise<StartedReceiver>;

const PATH = '/webhooks';

async function startFetch(
  options: WebhookReceiverOptions,
  handler: WebhookHandler,
): Promise<StartedReceiver> {
  const receive = fetchReceiver(options, handler);
  const served = await serveFetch((request) =>
    new URL(request.url).pathname === PATH ? receive(request) : new Response(null, { status: 404 }),
  );
  return { endpoint: `${served.url}${PATH}`, stop: () => served.close() };
}

async function startHono(options: WebhookReceiverOptions, handler: WebhookHandler): Promise<StartedReceiver> {
  const app = new Hono();
  app.all(PATH, honoReceiver(options, handler));
  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}${PATH}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      }),
  };
}

/** `json`: a parser in front of the receiver that keeps the bytes (`verify: keepRawBody`). */
function startExpress(parserInFront: 'none' | 'keepRawBody' | 'raw'): StartReceiver {
  return async (options, handler) => {
    const app = express();
    if (parserInFront === 'keepRawBody') app.use(express.json({ verify: keepRawBody }));
    if (parserInFront === 'raw') app.use(PATH, express.raw({ type: '*/*' }));
    app.all(PATH, expressReceiver(options, handler));
    app.use(express.json());
    return listen(app.listen(0, '127.0.0.1'));
  };
}

async function startKoa(options: WebhookReceiverOptions, handler: WebhookHandler): Promise<StartedReceiver> {
  const app = new Koa();
  const receive = koaReceiver(options, handler);
  app.silent = true;
  app.use((ctx, next) => (ctx.path === PATH ? receive(ctx, next) : next()));
  return listen(app.listen(0, '127.0.0.1'));
}

async function startFastify(
  options: WebhookReceiverOptions,
  handler: WebhookHandler,
): Promise<StartedReceiver> {
  const app = Fastify({ forceCloseConnections: true });
  await app.register(fastifyReceiver({ ...options, url: PATH }, handler));
  // Outside the plugin the app keeps its JSON parser.
  app.post('/json', async (request) => ({ parsed: request.body }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  return { endpoint: `http://127.0.0.1:${port}${PATH}`, stop: () => app.close() };
}

function startNestOn(platform: 'express' | 'fastify'): StartReceiver {
  return async (options, handler) => {
    const receive = nestReceiver(options, handler);
    @Controller()
    class WebhookController {
      @All('webhooks')
      webhook(@Req() req: object, @Res() res: object): Promise<void> {
        return receive(req, res);
      }

      @Post('json')
      json(@Req() req: { body?: unknown }): unknown {
        return { parsed: req.body };
      }
    }
    const started = await startNest(platform, { controllers: [WebhookController] });
    return { endpoint: `${started.url}${PATH}`, stop: () => started.close() };
  };
}

function listen(server: import('node:http').Server): Promise<StartedReceiver> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.once('listening', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        endpoint: `http://127.0.0.1:${port}${PATH}`,
        stop: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}

export const RECEIVERS: Readonly<Record<string, StartReceiver>> = {
  fetch: startFetch,
  hono: startHono,
  express: startExpress('none'),
  'express (express.json with keepRawBody in front)': startExpress('keepRawBody'),
  'express (express.raw in front)': startExpress('raw'),
  koa: startKoa,
  fastify: startFastify,
  'nestjs (express platform)': startNestOn('express'),
  'nestjs (fastify platform)': startNestOn('fastify'),
};

/** Stripe's signature: `t=<seconds>,v1=<hex HMAC-SHA256 of "t.body">`, key = the endpoint secret as text. */
export function stripeHeaders(body: string, secret: string, timestamp = Math.floor(Date.now() / 1_000)) {
  const v1 = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
  return { 'stripe-signature': `t=${timestamp},v1=${v1}`, 'content-type': 'application/json' };
}
