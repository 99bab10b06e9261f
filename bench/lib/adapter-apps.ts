/**
 * The apps of `npm run bench -- adapters`: one per framework, the workload the npm peers were
 * measured on (a small JSON POST to /charges; a counted side effect; 201 JSON with `Location`, a
 * custom header and `Set-Cookie`). Bare, each framework reads and parses the body its usual way;
 * with idemkit, the same app has the framework's adapter in front, used as its docs say.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Idempotency } from '../../src/core/engine.js';
import { nestApp } from './adapter-apps-nest.js';
import { CHARGES_PATH, type Framework } from './adapter-variants.js';

/** The adapter modules, loaded from the tree being measured (compiled or sources). */
export interface AdapterModules {
  express: typeof import('../../src/adapters/express.js');
  fastify: typeof import('../../src/adapters/fastify.js');
  koa: typeof import('../../src/adapters/koa.js');
  hono: typeof import('../../src/adapters/hono.js');
  nestjs: typeof import('../../src/adapters/nestjs.js');
}

export interface Served {
  url: string;
  close(): Promise<void>;
}

interface Charge {
  amount: number;
  currency: string;
  ref: string;
}

let created = 0;

/** The side effect and the answer, the same in every app. */
function createCharge(charge: Charge) {
  const id = `ch_${++created}`;
  return {
    id,
    location: `${CHARGES_PATH}/${id}`,
    cookie: `last_charge=${id}; Path=/; HttpOnly`,
    json: { id, ref: charge.ref, amount: charge.amount, currency: charge.currency, status: 'succeeded' },
  };
}

type AppFactory = (idem: { engine: Idempotency; modules: AdapterModules } | undefined) => Promise<Served>;

export const APPS: Record<Framework, AppFactory> = {
  express: (idem) => expressApp('express', idem),
  express5: (idem) => expressApp('express5', idem),
  // Bare, the same app as `express`: each pair compares with bare Express 4.
  'express-glue': (idem) => (idem ? expressGlueApp(idem.engine) : expressApp('express', undefined)),
  fastify: fastifyApp,
  koa: koaApp,
  hono: honoApp,
  'nestjs-express': (idem) => nestApp('express', idem && { engine: idem.engine, nest: idem.modules.nestjs }),
  'nestjs-fastify': (idem) => nestApp('fastify', idem && { engine: idem.engine, nest: idem.modules.nestjs }),
};

async function expressApp(
  pkg: 'express' | 'express5',
  idem: { engine: Idempotency; modules: AdapterModules } | undefined,
): Promise<Served> {
  const express = (
    pkg === 'express' ? (await import('express')).default : (await import('express5' as string)).default
  ) as typeof import('express');
  const app = express();
  // When the load generator closes its connections at the end of a warm-up or a run, requests
  // still being read fail in body-parser ("stream is not readable"), with or without idemkit, and
  // nobody is left to answer. Express (and idempotencyErrors, which logs like it) print each
  // stack unless the env is `test`; failed requests still show in the non-2xx column.
  app.set('env', 'test');
  if (idem) app.use(idem.modules.express.idempotency(idem.engine));
  app.post(CHARGES_PATH, express.json(), (req, res) => {
    const charge = createCharge(req.body as Charge);
    res.status(201).location(charge.location).set('x-charge-id', charge.json.id);
    res.append('set-cookie', charge.cookie).json(charge.json);
  });
  if (idem) app.use(idem.modules.express.idempotencyErrors());
  return listenNode(createServer(app));
}

/**
 * Bare Express 4 with the engine called by hand: `begin()` on the raw body kept by the parser's
 * `verify` hook, the handler's work, `commit()` of the response it builds, then the same
 * `res.json()` answer as the bare app. What the adapter adds on top (capturing what the handler
 * writes, putting the body back for the parser, the error handler) is left out: the difference
 * between this variant and `express` is the adapter's own cost.
 */
async function expressGlueApp(engine: Idempotency): Promise<Served> {
  const express = (await import('express')).default;
  const app = express();
  app.set('env', 'test');
  const kept = new WeakMap<IncomingMessage, Buffer>();
  const json = express.json({ verify: (req, _res, buffer) => kept.set(req, buffer) });
  app.post(CHARGES_PATH, json, async (req, res, next) => {
    try {
      const decision = await engine.begin({
        method: req.method,
        path: req.path,
        query: '',
        headers: req.headers,
        body: kept.get(req) ?? new Uint8Array(0),
      });
      if (decision.kind === 'reject' || decision.kind === 'replay') return sendStored(res, decision.response);
      const charge = createCharge(req.body as Charge);
      if (decision.kind === 'execute') {
        const body = Buffer.from(JSON.stringify(charge.json));
        const headers: [string, string][] = [
          ['content-type', 'application/json; charset=utf-8'],
          ['location', charge.location],
          ['x-charge-id', charge.json.id],
        ];
        const { response } = await decision.commit({ status: 201, headers, body });
        if (response.status !== 201) return sendStored(res, response);
        res.set('idempotent-replayed', 'false');
      }
      res.status(201).location(charge.location).set('x-charge-id', charge.json.id);
      res.append('set-cookie', charge.cookie).json(charge.json);
    } catch (error) {
      next(error);
    }
  });
  return listenNode(createServer(app));
}

function sendStored(
  res: import('express').Response,
  response: { status: number; headers: readonly (readonly [string, string])[]; body: Uint8Array },
): void {
  // One writeHead with a flat list, as a hand glue would answer a stored response (and as the
  // adapter does): Express's res.append per header would make the glue's replays the slow part.
  const flat: string[] = [];
  for (const [name, value] of response.headers) flat.push(name, value);
  res.writeHead(response.status, flat);
  res.end(Buffer.from(response.body.buffer, response.body.byteOffset, response.body.byteLength));
}

async function fastifyApp(
  idem: { engine: Idempotency; modules: AdapterModules } | undefined,
): Promise<Served> {
  const { default: fastify } = await import('fastify');
  const app = fastify();
  if (idem) await app.register(idem.modules.fastify.default, idem.engine);
  app.post(CHARGES_PATH, async (request, reply) => {
    const charge = createCharge(request.body as Charge);
    reply.code(201).header('location', charge.location).header('x-charge-id', charge.json.id);
    reply.header('set-cookie', charge.cookie);
    return charge.json;
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => app.close() };
}

async function koaApp(idem: { engine: Idempotency; modules: AdapterModules } | undefined): Promise<Served> {
  const { default: Koa } = await import('koa');
  const app = new Koa();
  if (idem) app.use(idem.modules.koa.idempotency(idem.engine));
  // No router or body parser is installed: the route and a JSON reader in a few lines, the same bare.
  app.use(async (ctx) => {
    if (ctx.method !== 'POST' || ctx.path !== CHARGES_PATH) return;
    const charge = createCharge(JSON.parse(await readText(ctx.req)) as Charge);
    ctx.status = 201;
    ctx.set('location', charge.location);
    ctx.set('x-charge-id', charge.json.id);
    ctx.append('set-cookie', charge.cookie);
    ctx.body = charge.json;
  });
  return listenNode(createServer(app.callback()));
}

async function honoApp(idem: { engine: Idempotency; modules: AdapterModules } | undefined): Promise<Served> {
  const [{ Hono }, { serve }] = await Promise.all([import('hono'), import('@hono/node-server')]);
  const app = new Hono();
  if (idem) app.use(CHARGES_PATH, idem.modules.hono.idempotency(idem.engine));
  app.post(CHARGES_PATH, async (c) => {
    const charge = createCharge(await c.req.json<Charge>());
    c.header('location', charge.location);
    c.header('x-charge-id', charge.json.id);
    c.header('set-cookie', charge.cookie, { append: true });
    return c.json(charge.json, 201);
  });
  const server = await new Promise<Server>((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s as Server));
  });
  return served(server);
}

function readText(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
}

async function listenNode(server: Server): Promise<Served> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return served(server);
}

function served(server: Server): Served {
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
