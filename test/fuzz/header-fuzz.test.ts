import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { startGateway } from '../../src/gateway/server.js';
import type { GatewayConfig } from '../../src/gateway/types.js';
import { memoryStore } from '../../src/index.js';
import { type RawResponse, rawRequest } from '../../src/testing/raw-http.js';
import { serveFetch } from '../../src/testing/serve-fetch.js';
import { countingStore } from '../../src/testing/store-spy.js';
import { outsideFieldGrammar, trimOws } from '../support/fuzz-keys.js';
import { badInputReport } from '../support/fuzz-report.js';
import { loopbackGatewayConfig } from '../support/gateway-start.js';

/*
 * T46 and T43, fuzzed at the gateway: the headers that choose the scope (Authorization, the
 * tenant header) and the one that enters the fingerprint (Content-Type) carry odd bytes. Two
 * requests with one key: when their scopes differ (as received), the second runs on its own and
 * never gets the first one's answer; when they match, it gets the replay (or 422 when the media
 * type differs), never a second run. Nothing answers 5xx or hangs; a request without a principal
 * is refused with no store call. FUZZ_SEED=<n> replays a run.
 */

const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
const PAIRS = Number(process.env.FUZZ_HEADER_PAIRS ?? 2_000);
const TENANT = 'x-tenant';
const quiet = { onWarning() {} };

const report = badInputReport('header-fuzz', SEED, {
  'odd-headers':
    'requests with generated Authorization, tenant and Content-Type bytes, answered as the rules demand',
  'cross-scope-attempts':
    "a key already used in another scope: runs on its own, never gets the other scope's answer",
});

/** Header values as written on the wire (latin1 bytes); `undefined` sends no such header. */
interface Sent {
  authorization: string | undefined;
  tenant: string | undefined;
  contentType: string | undefined;
}

const latin1 = fc.string({
  unit: fc
    .integer({ min: 0x00, max: 0xff })
    .filter((c) => c !== 0x0a && c !== 0x0d) // CR/LF would start another header: injection, covered by T46
    .map((c) => String.fromCharCode(c)),
  maxLength: 16,
});
const authorization = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      'Bearer alice',
      'Bearer alice ',
      ' Bearer alice',
      'Bearer\talice',
      'bearer alice',
      'Bearer  alice',
      'Bearer bob',
      'Bearer b\xe9b',
      'Bearer b\xc3\xa9b', // the same name in UTF-8 bytes
      'Basic YWxpY2U6',
      'Bearer alice, Bearer bob',
      'Bearer \x00alice',
      'Bearer alice\x7f',
      '',
      ' \t ',
    ),
  },
  { weight: 1, arbitrary: latin1 },
  { weight: 1, arbitrary: fc.constant(undefined) },
);
const tenant = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      'acme',
      'ACME',
      ' acme',
      'acme\t',
      'acme,globex',
      'globex',
      '\xe9',
      '',
      ' ',
      'a\x01',
    ),
  },
  { weight: 1, arbitrary: latin1 },
  { weight: 2, arbitrary: fc.constant(undefined) },
);
const contentType = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      'application/json',
      'Application/JSON',
      'application/json; charset=utf-8',
      'application/json;charset="\xff"',
      'text/plain',
      '',
      '\xff/\xfe',
      'application/json\x00',
    ),
  },
  { weight: 1, arbitrary: latin1 },
  { weight: 1, arbitrary: fc.constant(undefined) },
);
const sent = fc.record({ authorization, tenant, contentType });
/** The second request: often the first one with one or two headers changed, so scopes meet. */
const pair = fc
  .tuple(sent, sent, fc.constantFrom('none', 'authorization', 'tenant', 'contentType', 'all'))
  .map(([a, other, keep]): [Sent, Sent] => {
    if (keep === 'none') return [a, other];
    if (keep === 'all') return [a, { ...a }];
    return [a, { ...other, [keep]: a[keep] }];
  });

/** What the gateway receives of one header: absent is the empty value; surrounding OWS is not the value. */
const received = (value: string | undefined) => (value === undefined ? '' : trimOws(value));
const malformed = (s: Sent) =>
  [s.authorization, s.tenant, s.contentType].some((v) => v !== undefined && outsideFieldGrammar(v));
const scopeOf = (s: Sent) => JSON.stringify([received(s.tenant), received(s.authorization)]);

interface Answer {
  status: number;
  replayed: boolean;
  body: string;
  problemType: string | undefined;
}

function answerOf(res: RawResponse): Answer {
  const header = (name: string) => res.headers.find(([n]) => n === name)?.[1];
  const body = res.body.toString('latin1');
  let problemType: string | undefined;
  if (/^application\/problem\+json/.test(header('content-type') ?? '')) {
    problemType = (JSON.parse(body) as { type?: string }).type;
  }
  return { status: res.status, replayed: header('idempotent-replayed') === 'true', body, problemType };
}

async function gatewayFor(config: Partial<GatewayConfig>) {
  let runs = 0;
  // Every execution answers with its own number, so an answer shows which run it came from.
  const upstream = await serveFetch(() => new Response(`{"run":${++runs}}`, { status: 201 }));
  const spy = countingStore(memoryStore(quiet));
  const gateway = await startGateway({
    config: loopbackGatewayConfig(upstream.url, config),
    store: spy.store,
    engine: quiet,
  });
  after(async () => {
    await gateway.close();
    await upstream.close();
  });
  return { url: gateway.url, storeCalls: spy.calls, runs: () => runs };
}

type Gateway = Awaited<ReturnType<typeof gatewayFor>>;
type Tally = (category: string, correct: boolean) => void;

async function send(gateway: Gateway, s: Sent, key: string): Promise<Answer> {
  const headers: [string, string][] = [['idempotency-key', key]];
  if (s.authorization !== undefined) headers.push(['authorization', s.authorization]);
  if (s.tenant !== undefined) headers.push([TENANT, s.tenant]);
  if (s.contentType !== undefined) headers.push(['content-type', s.contentType]);
  const answer = answerOf(
    await rawRequest(gateway.url, { method: 'POST', path: '/h', headers, body: '{"a":1}' }),
  );
  assert.ok(answer.status < 500, `${JSON.stringify(s)} → ${answer.status} ${answer.body}`);
  return answer;
}

/**
 * The answer one request must get when it does not meet an earlier record, or `undefined` when
 * it is admitted (the caller judges what an admitted request got).
 */
async function refusedAsRequired(gateway: Gateway, s: Sent, key: string, tally: Tally) {
  const before = gateway.storeCalls();
  const answer = await send(gateway, s, key);
  const what = `${JSON.stringify(s)} → ${answer.status} ${answer.body}`;
  if (malformed(s)) {
    const correct = answer.status === 400 && gateway.storeCalls() === before;
    tally('odd-headers', correct);
    assert.ok(correct, `${what}: a control byte in a field value gets 400, no store call`);
    return { answer, admitted: false };
  }
  if (received(s.authorization) === '') {
    const correct =
      answer.status === 401 &&
      answer.problemType === 'urn:idemkit:problem:principal-required' &&
      gateway.storeCalls() === before;
    tally('odd-headers', correct);
    assert.ok(correct, `${what}: no principal gets 401 principal-required, no store call`);
    return { answer, admitted: false };
  }
  return { answer, admitted: true };
}

async function headerPair(gateway: Gateway, [a, b]: [Sent, Sent], tally: Tally): Promise<void> {
  const key = randomUUID();
  const first = await refusedAsRequired(gateway, a, key, tally);
  if (first.admitted) {
    tally('odd-headers', first.answer.status === 201 && !first.answer.replayed);
    assert.equal(first.answer.status, 201, `${JSON.stringify(a)} runs: ${first.answer.body}`);
    assert.equal(first.answer.replayed, false);
  }
  const runsBefore = gateway.runs();
  const second = await refusedAsRequired(gateway, b, key, tally);
  if (!second.admitted) return;
  const got = second.answer;
  const what = `${JSON.stringify(a)} then ${JSON.stringify(b)} → ${got.status} ${got.body}`;
  if (!first.admitted || scopeOf(a) !== scopeOf(b)) {
    // Another scope (or nothing recorded): its own run, never the first request's answer.
    const correct = got.status === 201 && !got.replayed && gateway.runs() === runsBefore + 1;
    tally('odd-headers', correct);
    if (first.admitted) tally('cross-scope-attempts', correct);
    assert.ok(correct, `${what}: another scope must run on its own (cross-scope answer?)`);
    return;
  }
  // The same scope: never a second run. The same media type replays the first answer.
  const sameMediaType = received(a.contentType) === received(b.contentType);
  const replay = got.status === 201 && got.replayed && got.body === first.answer.body;
  const mismatch = got.status === 422 && got.problemType === 'urn:idemkit:problem:key-reused';
  const correct = gateway.runs() === runsBefore && (replay || (!sameMediaType && mismatch));
  tally('odd-headers', correct);
  assert.ok(
    correct,
    `${what}: the same scope and key must replay${sameMediaType ? '' : ' or get 422'}, never run again`,
  );
}

async function checked<T>(property: fc.IAsyncPropertyWithHooks<T>, runs: number): Promise<void> {
  const out = await fc.check(property, { seed: SEED, numRuns: runs });
  if (out.failed) {
    const cause = out.errorInstance instanceof Error ? out.errorInstance.message : String(out.errorInstance);
    assert.fail(`seed ${SEED}, counterexample ${fc.stringify(out.counterexample)}: ${cause}`);
  }
}

describe(`header fuzz at the gateway (seed ${SEED})`, () => {
  it(`${PAIRS} request pairs with odd Authorization, tenant and Content-Type bytes: never 5xx, never an answer across scopes`, async () => {
    const gateway = await gatewayFor({ tenantHeader: TENANT });
    await checked(
      fc.asyncProperty(pair, (p) => headerPair(gateway, p, report.count)),
      PAIRS,
    );
    // The generator must have produced each kind of pair, or the run proves little.
    assert.ok(
      report.get('cross-scope-attempts').tried > PAIRS / 10,
      JSON.stringify(report.get('cross-scope-attempts')),
    );
    const alive = await send(
      gateway,
      { authorization: 'Bearer z', tenant: 't', contentType: 'application/json' },
      randomUUID(),
    );
    assert.equal(alive.status, 201);
  });

  it('the same checks catch a gateway that does not scope by tenant (negative control)', async () => {
    // A misconfigured deployment: the tenant header is not part of the scope, so two tenants
    // with one principal and key share a record. The property must find a cross-scope replay.
    const gateway = await gatewayFor({});
    const out = await fc.check(
      fc.asyncProperty(pair, (p) => headerPair(gateway, p, () => {})),
      { seed: SEED, numRuns: PAIRS },
    );
    assert.equal(out.failed, true, 'a replay across tenants must be caught');
    assert.match(String((out.errorInstance as Error).message), /cross-scope/);
  });
});
