import { createClient } from '../../src/client/index.js';

/*
 * A client process for the journal tests, driven by IDEMKIT_TEST_JOURNAL (JSON):
 * - `send`: starts one journaled charge and waits for it (the test kills it with SIGKILL first);
 * - `resume`: opens the same journal, resumes what the dead process left, prints the outcome.
 */
interface Settings {
  mode: 'send' | 'resume';
  journal: string;
  url: string;
  operation?: string;
  maxAgeMs?: number;
}

const settings = JSON.parse(process.env.IDEMKIT_TEST_JOURNAL ?? '{}') as Settings;
const client = createClient({
  baseUrl: settings.url,
  // Credentials live in the client's headers: never in the journal, supplied again on resume.
  headers: { authorization: 'Bearer journal-customer' },
  journal: {
    path: settings.journal,
    ...(settings.maxAgeMs === undefined ? {} : { maxAgeMs: settings.maxAgeMs }),
  },
  timeoutMs: 30_000,
  retries: { limit: 5, baseDelayMs: 10 },
});

if (settings.mode === 'send') {
  console.log('SENDING');
  await client.fetch('/charges', {
    method: 'POST',
    json: { operation: settings.operation, amount: 4200, currency: 'eur' },
    headers: { 'x-request-source': 'journal-test' },
  });
  console.log('DONE'); // never reached: the test kills this process while the answer is outstanding
} else {
  const results = await client.resume();
  const summary = results.map((r) => ({
    status: r.status,
    key: r.entry.key,
    method: r.entry.method,
    url: r.entry.url,
    response: r.response && { status: r.response.status, replayed: r.response.idemkit.replayed },
    error: r.error === undefined ? undefined : String(r.error),
  }));
  console.log(`RESULT ${JSON.stringify(summary)}`);
  await client.close();
}
