import { createApp } from './app.js';

/**
 * The example's check without a server, through `app.fetch` only, so it runs on any runtime:
 * `node --import tsx`, `bun`, `deno run` (see README.md). Exits non-zero on a duplicate.
 */
const { app, payments } = createApp();
const pay = () =>
  app.fetch(
    new Request('http://localhost/payments', {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: 'Bearer alice',
        'idempotency-key': 'order-42',
      },
      body: JSON.stringify({ amount: 1200, currency: 'eur' }),
    }),
  );
const first = await pay();
const second = await pay();
const replayed = [first, second].map((r) => r.headers.get('idempotent-replayed'));
const same = (await first.text()) === (await second.text());
if (first.status !== 201 || replayed.join() !== 'false,true' || !same || payments.size !== 1) {
  console.error('fetch-check: FAILED', {
    statuses: [first.status, second.status],
    replayed,
    same,
    executions: payments.size,
  });
  process.exit(1);
}
console.log('fetch-check: ok (1 execution, the retry was a replay)');
