/**
 * The Express app of `npm run bench -- express`: the workload the npm peers were measured on
 * (a small JSON POST to /charges; a counted side effect; 201 JSON with `Location`, a custom
 * header and `Set-Cookie`), bare or with idemkit glued in by hand (express-glue.ts).
 */
import { STATUS_CODES } from 'node:http';
import express, { type ErrorRequestHandler, type Express, type Request, type Response } from 'express';
import type { Idempotency } from '../../src/core/engine.js';
import type { problemResponse as ProblemResponse } from '../../src/core/problem.js';
import { idempotent } from './express-glue.js';
import { CHARGES_PATH } from './express-variants.js';

let created = 0;

/** The app's own route handler, the same in every variant. */
function createCharge(req: Request, res: Response): void {
  const charge = req.body as { amount: number; currency: string; ref: string };
  created++;
  const id = `ch_${created}`;
  res
    .status(201)
    .location(`${CHARGES_PATH}/${id}`)
    .set('x-charge-id', id)
    .cookie('last_charge', id, { httpOnly: true })
    .json({ id, ref: charge.ref, amount: charge.amount, currency: charge.currency, status: 'succeeded' });
}

/**
 * `idem` undefined: bare Express, `express.json()` then the handler (the baseline). Otherwise
 * `express.raw()` (the engine needs the exact bytes) then the glue, which parses the JSON for the
 * handler as express.json() would have.
 */
export function chargesApp(
  idem?: { engine: Idempotency; problem: typeof ProblemResponse; maxBodyBytes: number } | undefined,
): Express {
  const app = express();
  if (idem) {
    app.post(
      CHARGES_PATH,
      express.raw({ type: () => true, limit: idem.maxBodyBytes }),
      idempotent(app, idem.engine, idem.problem, createCharge),
    );
  } else {
    app.post(CHARGES_PATH, express.json(), createCharge);
  }
  app.use(problemErrors(idem?.problem));
  return app;
}

/**
 * Express's default error page is HTML (with a stack trace in development): answer a short
 * problem instead. A body over the limit is idemkit's own `payload-too-large` behind the glue.
 */
function problemErrors(problem?: typeof ProblemResponse): ErrorRequestHandler {
  return (error, _req, res, _next) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const status = Number((error as { status?: unknown }).status);
    if (problem && status === 413) {
      const answer = problem('payload-too-large');
      res.status(answer.status).set(Object.fromEntries(answer.headers)).end(answer.body);
      return;
    }
    const code = status >= 400 && status < 500 ? status : 500;
    res
      .status(code)
      .type('application/problem+json')
      .set('cache-control', 'no-store')
      .send(JSON.stringify({ title: STATUS_CODES[code] ?? 'Error', status: code }));
  };
}
