import { after, before, describe, it } from 'node:test';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { withIdempotency } from '../../src/adapters/fetch.js';
import { dynamodbStore } from '../../src/stores/dynamodb.js';
import { defineHttpContract, type HttpContractOptions } from '../../src/testing/index.js';
import { serveFetch } from '../../src/testing/serve-fetch.js';
import { dynamoClient, freshTable, type InProcessDynalite, startDynalite } from '../support/dynalite.js';
import { gatewayStart } from '../support/gateway-start.js';

/*
 * The HTTP contract (group A and the security cases) through the fetch adapter and the gateway on
 * the DynamoDB store, against dynalite in this process.
 */

const SECRET = 'contract-secret-for-dynamodb';
const fuzzRuns = Number(process.env.IDEMKIT_SHARED_FUZZ_RUNS ?? 300);
let server: InProcessDynalite;
let client: DynamoDBClient;
let tableName: string;

before(async () => {
  server = await startDynalite();
  client = dynamoClient(server.endpoint);
  tableName = await freshTable(client, 'http');
});
after(async () => {
  client?.destroy();
  await server?.close();
});

const fetchAdapter: HttpContractOptions['start'] = ({ app, options }) =>
  serveFetch(withIdempotency((req, ctx) => app.fetch(req, ctx), options));

const adapters: [string, HttpContractOptions['start']][] = [
  ['fetch adapter', fetchAdapter],
  ['gateway', gatewayStart(SECRET)],
];
for (const [adapterName, start] of adapters) {
  defineHttpContract({
    name: `${adapterName} + dynamodb store (dynalite)`,
    describe,
    it,
    secret: SECRET,
    fuzzRuns,
    // The contract's T7 retries 300 ms after retention ends; the skew margin (default 1 s) keeps a
    // record that much longer, so it runs with a margin below 300 ms.
    createStore: async () => ({
      store: dynamodbStore({ client, tableName, clockSkewMs: 100, onWarning() {} }),
    }),
    start,
  });
}
