import { describe, it } from 'node:test';
import { withIdempotency } from '../../src/adapters/fetch.js';
import { memoryStore } from '../../src/index.js';
import { defineHttpContract } from '../../src/testing/index.js';
import { serveFetch } from '../../src/testing/serve-fetch.js';

const fuzzRuns = Number(process.env.IDEMKIT_FUZZ_RUNS ?? 10_000);

defineHttpContract({
  name: 'fetch adapter + memory store',
  describe,
  it,
  fuzzRuns,
  createStore: () => ({ store: memoryStore({ onWarning() {} }) }),
  start: ({ app, options }) => serveFetch(withIdempotency((req, ctx) => app.fetch(req, ctx), options)),
});
