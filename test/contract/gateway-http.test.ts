import { describe, it } from 'node:test';
import { memoryStore } from '../../src/index.js';
import { defineHttpContract, type StoreHandle } from '../../src/testing/index.js';
import { gatewayStart } from '../support/gateway-start.js';
import { tempSqliteStores } from '../support/temp-sqlite.js';

const fuzzRuns = Number(process.env.IDEMKIT_FUZZ_RUNS ?? 2_000);

const stores: [string, () => StoreHandle][] = [
  ['memory', () => ({ store: memoryStore({ onWarning() {} }) })],
  ['sqlite', tempSqliteStores('idemkit-gateway-')],
];

for (const [name, createStore] of stores) {
  defineHttpContract({
    name: `gateway + ${name} store`,
    describe,
    it,
    fuzzRuns,
    createStore,
    start: gatewayStart(),
  });
}
