import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import express from 'express';
import { webhookReceiver as expressReceiver } from '../../src/adapters/express.js';
import {
  createDeduplicator,
  type Deduplicator,
  receiveWebhook,
  type VerifiedWebhook,
  type WebhookHandler,
  type WebhookReceiverOptions,
} from '../../src/consumer/index.js';
import { memoryStore } from '../../src/index.js';
import { serveFetch } from '../../src/testing/serve-fetch.js';
import { RECEIVERS, type StartReceiver, stripeHeaders } from '../support/webhook-receivers.js';

/*
 * Every framework's webhookReceiver over a real socket, with Stripe-signed deliveries: verified
 * before any record is written, each event handled once, every outcome answered the way a sender
 * understands (2xx done, anything else redeliver). The effects ledger counts what the handler
 * did per event id and per body, so a duplicate or a forgery that got through would show.
 */

const SECRET = `whsec_${randomBytes(16).toString('hex')}`;
const TIMEOUT_MS = 10_000;

interface Ledger {
  runs: number;
  /** `${id}:${marker}` for each completed effect. */
  effects: string[];
}

function eventBody(id: string, marker = 'genuine'): string {
  return JSON.stringify({ id, type: 'invoice.paid', data: { marker } });
}

function recordingHandler(
  ledger: Ledger,
  before?: (event: VerifiedWebhook) => Promise<void> | void,
): WebhookHandler {
  return async (event) => {
    ledger.runs++;
    await before?.(event);
    const { data } = JSON.parse(event.text) as { data: { marker: string } };
    ledger.effects.push(`${event.id}:${data.marker}`);
    return { ok: true };
  };
}

function post(endpoint: string, body: string, headers: Record<string, string>): Promise<Response> {
  return fetch(endpoint, { method: 'POST', headers, body, signal: AbortSignal.timeout(TIMEOUT_MS) });
}

const deliver = (endpoint: string, body: string) => post(endpoint, body, stripeHeaders(body, SECRET));

async function problemType(response: Response): Promise<string> {
  assert.equal(response.headers.get('content-type'), 'application/problem+json');
  return ((await response.json()) as { type: string }).type;
}

async function withReceiver(
  start: StartReceiver,
  handler: WebhookHandler,
  test: (endpoint: string, dedup: Deduplicator) => Promise<void>,
  options: Partial<WebhookReceiverOptions> = {},
): Promise<void> {
  const dedup = createDeduplicator({ store: memoryStore({ onWarning() {} }), retentionMs: 60_000 });
  const receiver = await start(
    { dedup, scheme: 'stripe', secret: SECRET, onError() {}, ...options },
    handler,
  );
  try {
    await test(receiver.endpoint, dedup);
  } finally {
    await receiver.stop();
    await dedup.close();
  }
}

for (const [name, start] of Object.entries(RECEIVERS)) {
  describe(`webhookReceiver: ${name}`, () => {
    it('a genuine event redelivered 5 times runs once; every answer is 200, the redeliveries say replayed', async () => {
      const ledger: Ledger = { runs: 0, effects: [] };
      await withReceiver(start, recordingHandler(ledger), async (endpoint) => {
        const id = `evt_${randomUUID()}`;
        const answers: Response[] = [];
        for (let i = 0; i < 5; i++) answers.push(await deliver(endpoint, eventBody(id)));

        assert.deepEqual(
          answers.map((a) => a.status),
          [200, 200, 200, 200, 200],
        );
        assert.deepEqual(await answers[0]?.json(), { id, status: 'processed' });
        assert.equal(answers[0]?.headers.get('idempotent-replayed'), null);
        for (const again of answers.slice(1)) {
          assert.equal(again.headers.get('idempotent-replayed'), 'true');
          assert.deepEqual(await again.json(), { id, status: 'duplicate' });
        }
        assert.equal(ledger.runs, 1);
        assert.deepEqual(ledger.effects, [`${id}:genuine`]);
      });
    });

    it('a forged event carrying the genuine id, sent first, gets 401 and takes nothing; the genuine one then runs', async () => {
      const ledger: Ledger = { runs: 0, effects: [] };
      await withReceiver(start, recordingHandler(ledger), async (endpoint) => {
        const id = `evt_${randomUUID()}`;
        const forgedBody = eventBody(id, 'forged');

        const forged = await post(endpoint, forgedBody, stripeHeaders(forgedBody, 'whsec_guessed'));
        const unsigned = await post(endpoint, forgedBody, { 'content-type': 'application/json' });
        const genuine = await deliver(endpoint, eventBody(id));

        assert.equal(forged.status, 401);
        assert.equal(await problemType(forged), 'urn:idemkit:problem:webhook-bad-signature');
        assert.equal(unsigned.status, 401);
        assert.equal(await problemType(unsigned), 'urn:idemkit:problem:webhook-missing-signature');
        assert.equal(genuine.status, 200);
        assert.deepEqual(await genuine.json(), { id, status: 'processed' });
        assert.deepEqual(ledger.effects, [`${id}:genuine`], 'no forged effect, the genuine one once');
      });
    });

    it('a genuine signature with a stale timestamp gets 401 stale-timestamp and runs nothing', async () => {
      const ledger: Ledger = { runs: 0, effects: [] };
      await withReceiver(start, recordingHandler(ledger), async (endpoint) => {
        const body = eventBody(`evt_${randomUUID()}`);
        const tenMinutesAgo = Math.floor(Date.now() / 1_000) - 600;

        const stale = await post(endpoint, body, stripeHeaders(body, SECRET, tenMinutesAgo));

        assert.equal(stale.status, 401);
        assert.equal(await problemType(stale), 'urn:idemkit:problem:webhook-stale-timestamp');
        assert.equal(ledger.runs, 0);
      });
    });

    it('a handler that throws answers a bare 500 and is not marked processed: the redelivery runs it', async () => {
      const ledger: Ledger = { runs: 0, effects: [] };
      const failures: unknown[] = [];
      const handler = recordingHandler(ledger, () => {
        if (ledger.runs === 1) throw new Error('db at 10.0.0.7 refused: SELECT secret_column');
      });
      await withReceiver(
        start,
        handler,
        async (endpoint) => {
          const id = `evt_${randomUUID()}`;

          const failed = await deliver(endpoint, eventBody(id));
          const failedText = await failed.clone().text();
          const retried = await deliver(endpoint, eventBody(id));
          const again = await deliver(endpoint, eventBody(id));

          assert.equal(failed.status, 500);
          assert.equal(await problemType(failed), 'urn:idemkit:problem:handler-error');
          assert.doesNotMatch(failedText, /10\.0\.0\.7|secret_column|refused|at .*\.ts/);
          assert.equal(failures.length, 1, 'onError was told');
          assert.equal(retried.status, 200);
          assert.deepEqual(await retried.json(), { id, status: 'processed' });
          assert.equal(again.headers.get('idempotent-replayed'), 'true');
          assert.equal(ledger.runs, 2);
          assert.deepEqual(ledger.effects, [`${id}:genuine`]);
        },
        { onError: (error) => failures.push(error) },
      );
    });

    it('8 concurrent deliveries of one event: exactly one run; the others get 409 with Retry-After, later 200', async () => {
      const ledger: Ledger = { runs: 0, effects: [] };
      let open: () => void = () => {};
      const gate = new Promise<void>((resolve) => {
        open = resolve;
      });
      // The first run holds until the seven others were answered, so all of them meet it running.
      await withReceiver(
        start,
        recordingHandler(ledger, () => gate),
        async (endpoint) => {
          const id = `evt_${randomUUID()}`;
          const body = eventBody(id);
          let answered = 0;
          const statuses = await Promise.all(
            Array.from({ length: 8 }, async () => {
              const response = await deliver(endpoint, body);
              const retryAfter = response.headers.get('retry-after');
              if (++answered === 7) open();
              await response.arrayBuffer();
              return { status: response.status, retryAfter };
            }),
          );
          const later = await deliver(endpoint, body);

          const sorted = statuses.map((s) => s.status).sort();
          assert.deepEqual(sorted, [200, 409, 409, 409, 409, 409, 409, 409]);
          for (const s of statuses) if (s.status === 409) assert.match(s.retryAfter ?? '', /^[1-9]\d*$/);
          assert.equal(later.status, 200);
          assert.equal(later.headers.get('idempotent-replayed'), 'true');
          assert.equal(ledger.runs, 1);
          assert.deepEqual(ledger.effects, [`${id}:genuine`]);
        },
      );
    });

    it('answers another method 405 with Allow: POST, and a body over maxBodyBytes 413, running nothing', async () => {
      const ledger: Ledger = { runs: 0, effects: [] };
      await withReceiver(
        start,
        recordingHandler(ledger),
        async (endpoint) => {
          const big = eventBody(`evt_${randomUUID()}`, 'x'.repeat(4_096));

          const get = await fetch(endpoint, { signal: AbortSignal.timeout(TIMEOUT_MS) });
          const tooLarge = await deliver(endpoint, big);

          assert.equal(get.status, 405);
          assert.equal(get.headers.get('allow'), 'POST');
          assert.equal(await problemType(get), 'urn:idemkit:problem:webhook-method-not-allowed');
          assert.equal(tooLarge.status, 413);
          assert.equal(await problemType(tooLarge), 'urn:idemkit:problem:payload-too-large');
          assert.equal(ledger.runs, 0);
        },
        { maxBodyBytes: 1_024 },
      );
    });

    it('negative control: with a deduplicator that remembers nothing, the same harness counts every redelivery', async () => {
      const ledger: Ledger = { runs: 0, effects: [] };
      const forgetful = createDeduplicator({ store: memoryStore({ onWarning() {} }) });
      const dedup: Pick<Deduplicator, 'once'> = {
        // A new source per call: no id is ever seen twice, as if there were no de-duplication.
        once: (delivery, fn) => forgetful.once({ ...delivery, source: randomUUID() }, fn),
      };
      await withReceiver(
        start,
        recordingHandler(ledger),
        async (endpoint) => {
          const id = `evt_${randomUUID()}`;
          for (let i = 0; i < 3; i++) assert.equal((await deliver(endpoint, eventBody(id))).status, 200);

          assert.equal(ledger.runs, 3, 'the ledger sees duplicates when nothing stops them');
        },
        { dedup },
      );
      await forgetful.close();
    });
  });
}

describe('webhookReceiver: what the wrappers refuse, and a control without verification', () => {
  it('negative control: a receiver that trusts the id in an unverified body lets a forgery take the genuine id', async () => {
    const ledger: Ledger = { runs: 0, effects: [] };
    const dedup = createDeduplicator({ store: memoryStore({ onWarning() {} }) });
    const handler = recordingHandler(ledger);
    const served = await serveFetch(async (request) => {
      const text = await request.text();
      const id = (JSON.parse(text) as { id: string }).id;
      // No verifyWebhook(): the body's claim about its id is believed.
      await dedup.once({ source: 'stripe', id }, (ctx) => handler({ source: 'stripe', id, text }, ctx));
      return new Response(null, { status: 200 });
    });
    try {
      const id = `evt_${randomUUID()}`;
      const forgedBody = eventBody(id, 'forged');

      await post(served.url, forgedBody, stripeHeaders(forgedBody, 'whsec_guessed'));
      await deliver(served.url, eventBody(id));

      assert.deepEqual(ledger.effects, [`${id}:forged`], 'the forgery ran and the genuine event was lost');
    } finally {
      await served.close();
      await dedup.close();
    }
  });

  it('express: a JSON parser in front that kept no raw bytes is a setup error (500), and nothing is recorded', async () => {
    const ledger: Ledger = { runs: 0, effects: [] };
    const dedup = createDeduplicator({ store: memoryStore({ onWarning() {} }) });
    const app = express();
    const failures: unknown[] = [];
    const onError = (error: unknown) => failures.push(error);
    app.use(express.json());
    app.post(
      '/webhooks',
      expressReceiver({ dedup, scheme: 'stripe', secret: SECRET, onError }, recordingHandler(ledger)),
    );
    const server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    try {
      const id = `evt_${randomUUID()}`;

      const refused = await deliver(`http://127.0.0.1:${port}/webhooks`, eventBody(id));
      const text = await refused.clone().text();

      assert.equal(refused.status, 500);
      assert.equal(await problemType(refused), 'urn:idemkit:problem:invalid-options');
      assert.doesNotMatch(text, /keepRawBody|express\.raw|at /, 'the fix is for the log, not the sender');
      assert.match(String(failures[0]), /mount the receiver before express\.json\(\)/);
      assert.equal(ledger.runs, 0);
      assert.deepEqual(
        await dedup.once({ source: 'stripe', id }, () => 'first'),
        { status: 'processed', result: 'first' },
        'the id was not taken',
      );
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await dedup.close();
    }
  });
});

describe('receiveWebhook: the answers around a failed or unsure handler', () => {
  it('a handler that fails after effectsStarted(): 500 now, then 409 outcome-uncertain without Retry-After; it never runs again', async () => {
    const dedup = createDeduplicator({ store: memoryStore({ onWarning() {} }) });
    let runs = 0;
    const receive = receiveWebhook(
      { dedup, scheme: 'stripe', secret: SECRET, onError() {} },
      (_event, ctx) => {
        runs++;
        ctx.effectsStarted();
        throw new Error('the charge went out, then the process lost track');
      },
    );
    const body = eventBody(`evt_${randomUUID()}`);
    const request = () => receive({ method: 'POST', headers: stripeHeaders(body, SECRET), body });

    const first = await request();
    const redelivered = await request();

    assert.equal(first.status, 500);
    assert.equal(redelivered.status, 409);
    const problem = JSON.parse(Buffer.from(redelivered.body).toString('utf8')) as { type: string };
    assert.equal(problem.type, 'urn:idemkit:problem:outcome-uncertain');
    assert.equal(
      redelivered.headers.find(([name]) => name === 'retry-after'),
      undefined,
    );
    assert.equal(runs, 1);
    await dedup.close();
  });

  it('a store that does not answer: 503 store-unavailable with Retry-After, and the handler does not run', async () => {
    const store = memoryStore({ onWarning() {} });
    const down = new Proxy(store, {
      get(target, name, receiver) {
        if (name === 'claim') return () => Promise.reject(new Error('connection refused'));
        return Reflect.get(target, name, receiver);
      },
    });
    const dedup = createDeduplicator({ store: down });
    let runs = 0;
    const receive = receiveWebhook({ dedup, scheme: 'stripe', secret: SECRET, onError() {} }, () => {
      runs++;
    });
    const body = eventBody(`evt_${randomUUID()}`);

    const answer = await receive({ method: 'POST', headers: stripeHeaders(body, SECRET), body });

    assert.equal(answer.status, 503);
    assert.ok(answer.headers.some(([name]) => name === 'retry-after'));
    assert.doesNotMatch(Buffer.from(answer.body).toString('utf8'), /connection refused/);
    assert.equal(runs, 0);
    await dedup.close();
  });
});
