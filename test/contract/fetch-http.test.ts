import { describe, it } from 'node:test';
import { withIdempotency } from '../../src/adapters/fetch.js';
import { memoryStore } from '../../src/index.js';
import { defineHttpContract, type StoreHandle } from '../../src/testing/index.js';
import { serveFetch } from '../../src/testing/serve-fetch.js';
import { tempSqliteStores } from '../support/temp-sqlite.js';

const fuzzRuns = Number(process.env.IDEMKIT_FUZZ_RUNS ?? 10_000);

const stores: [string, () => StoreHandle][] = [
  ['memory', () => ({ store: memoryStore({ onWarning() {} }) })],
  ['sqlite', tempSqliteStores()],
];

for (const [name, createStore] of stores) {
  defineHttpContract({
    name: `fetch adapter + ${name} store`,
    describe,
    it,
    fuzzRuns,
    createStore,
    start: ({ app, options }) => serveFetch(withIdempotency((req, ctx) => app.fetch(req, ctx), options)),
  });
}
