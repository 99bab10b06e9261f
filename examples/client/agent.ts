import { createClient, OutcomeUnknownError } from '../../src/client/index.js';
import { startApi } from './api.js';

// An agent's tool calls against the example API (examples/client/api.ts), which loses the first
// answer of every POST. In your app: import { createClient } from 'idemkit/client'.
const api = await startApi();
const client = createClient({
  baseUrl: api.url,
  headers: { authorization: 'Bearer sk_example_agent' },
  openapi: `${api.url}/openapi.json`, // which operations take a key, and where
  journal: process.env.JOURNAL ?? '.idemkit/client-example.db', // survives kill -9
  retries: { limit: 3, baseDelayMs: 50 },
  timeoutMs: 2_000,
});

// Finish what a killed run left behind: same keys, same bodies.
for (const done of await client.resume())
  console.log(`resumed ${done.entry.method} ${done.entry.url}: ${done.status}`);

for (const op of await client.operations()) {
  const policy =
    op.policy.kind === 'keyed'
      ? `keyed by its ${op.policy.carrier.name} ${op.policy.carrier.in}`
      : op.policy.kind;
  console.log(`${op.method} ${op.path}: ${policy}`);
}

const charge = await client.fetch('/charges', { method: 'POST', json: { amount: 1200, currency: 'eur' } });
const { id } = (await charge.json()) as { id: string };
const info = charge.idemkit;
console.log(
  `charge ${id}: ${charge.status} after ${info.attempts} attempts, replayed: ${info.replayed}, key ${info.key}`,
);

try {
  await client.fetch(`/charges/${id}/refunds`, { method: 'POST' });
} catch (error) {
  // Refunds take no key: after a lost answer, only a lookup can tell whether it happened.
  if (!(error instanceof OutcomeUnknownError)) throw error;
  console.log(`refund: outcome unknown after ${error.attempts} attempt, not retried`);
}

console.log(`the API executed: ${await (await client.fetch('/ledger')).text()}`);
await client.close();
await api.close();
