import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { withIdempotency } from '../../src/adapters/fetch.js';
import type { Decision } from '../../src/core/decision.js';
import { startGateway } from '../../src/gateway/server.js';
import { createIdempotency, memoryStore } from '../../src/index.js';
import { rawRequest } from '../../src/testing/raw-http.js';
import { serveFetch } from '../../src/testing/serve-fetch.js';
import { countingStore } from '../../src/testing/store-spy.js';
import { keyFieldLines, keyOracle, outsideFieldGrammar, quoted, trimOws } from '../support/fuzz-keys.js';
import { badInputReport } from '../support/fuzz-report.js';
import { loopbackGatewayConfig } from '../support/gateway-start.js';

/*
 * T5 and T46, fuzzed: generated Idempotency-Key field values judged by the rules as written in
 * test/support/fuzz-keys.ts (never by src/core/key.ts). Invalid keys get 400 invalid-key with
 * zero store calls; valid ones are claimed, and their quoted form is the same key; nothing
 * answers 5xx or hangs. Most cases run through the engine in-process, a few thousand over real
 * sockets to the fetch adapter and to the gateway. The seed is printed; FUZZ_SEED=<n> replays
 * a run (FUZZ_SOCKET_CASES=<n> changes how many go over sockets).
 */

const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
const IN_PROCESS_CASES = 10_000;
const SOCKET_CASES = Number(process.env.FUZZ_SOCKET_CASES ?? 2_500);
const quiet = { onWarning() {} };
const INVALID_KEY = 'urn:idemkit:problem:invalid-key';

const report = badInputReport('key-fuzz', SEED, {
  'malformed-keys':
    'Idempotency-Key values the rules refuse: 400 invalid-key (or the HTTP parser 400), no store call',
  'valid-keys': 'Idempotency-Key values the rules accept: claimed, and the same key as their quoted form',
});

/** fc.check, failing with the seed, the counterexample and its own assertion message. */
async function checked<T>(property: fc.IAsyncPropertyWithHooks<T>, runs: number): Promise<void> {
  const out = await fc.check(property, { seed: SEED, numRuns: runs });
  if (out.failed) {
    const cause = out.errorInstance instanceof Error ? out.errorInstance.message : String(out.errorInstance);
    assert.fail(`seed ${SEED}, counterexample ${fc.stringify(out.counterexample)}: ${cause}`);
  }
}

/** What a key case needs from the system under test: a begin() and its store's call count. */
interface KeySystem {
  begin(keyLines: string[]): Promise<Decision>;
  storeCalls(): number;
  close(): Promise<void>;
}

function engineSystem(minKeyLength: number): KeySystem {
  const spy = countingStore(memoryStore(quiet));
  const idem = createIdempotency({ store: spy.store, minKeyLength, ...quiet });
  return {
    begin: (keyLines) =>
      idem.begin({
        method: 'POST',
        path: '/fuzz',
        headers: {
          'idempotency-key': keyLines.length === 1 ? (keyLines[0] as string) : keyLines,
          authorization: 'Bearer f',
        },
        body: new Uint8Array(0),
      }),
    storeCalls: spy.calls,
    close: () => idem.close(),
  };
}

/**
 * A deliberately broken variant for the negative control: a front that accepts any single
 * non-empty field line and hands the engine a digest of it, as an engine with a lax validator
 * would claim whatever it was sent.
 */
function laxSystem(minKeyLength: number): KeySystem {
  const real = engineSystem(minKeyLength);
  return {
    ...real,
    begin(keyLines) {
      if (keyLines.length !== 1 || keyLines[0] === '') return real.begin(keyLines);
      return real.begin([
        createHash('sha256')
          .update(keyLines[0] as string)
          .digest('hex'),
      ]);
    },
  };
}

const minKeyLengths = fc.constantFrom(1, 1, 1, 20, 36);

/** One in-process case: the oracle decides, the engine must agree. */
async function keyCase(
  make: (min: number) => KeySystem,
  lines: string[],
  minKeyLength: number,
  tally: (category: string, correct: boolean) => void = report.count,
) {
  const system = make(minKeyLength);
  try {
    const expected = keyOracle(lines, minKeyLength);
    const decision = await system.begin(lines);
    const what = `${JSON.stringify(lines)} (minKeyLength ${minKeyLength})`;
    if (expected === undefined) {
      const correct =
        decision.kind === 'reject' && decision.code === 'invalid-key' && system.storeCalls() === 0;
      tally('malformed-keys', correct);
      assert.equal(decision.kind, 'reject', `${what} must be refused`);
      assert.equal(decision.kind === 'reject' && decision.code, 'invalid-key', what);
      assert.equal(system.storeCalls(), 0, `${what}: an invalid key never reaches the store`);
      return;
    }
    assert.equal(decision.kind, 'execute', `${what} is a valid key`);
    if (decision.kind === 'execute')
      await decision.commit({ status: 201, headers: [], body: new Uint8Array(0) });
    // The same key, sent again as an sf-string, is the same key: a replay.
    const again = await system.begin([quoted(expected)]);
    tally('valid-keys', again.kind === 'replay');
    assert.equal(again.kind, 'replay', `${what} ≡ ${quoted(expected)}`);
  } finally {
    await system.close();
  }
}

/** On the wire a header is bytes: characters above U+00FF go as their UTF-8 bytes. */
function wireForm(value: string): string {
  return [...value].some((ch) => ch.charCodeAt(0) > 0xff)
    ? Buffer.from(value, 'utf8').toString('latin1')
    : value;
}

const socketLines = keyFieldLines
  .map((lines) => lines.map(wireForm))
  // CR or LF would end the field line and start another header: that is header injection, which
  // the in-process cases above and the HTTP contract's T46 cover.
  .filter((lines) => lines.every((line) => !line.includes('\r') && !line.includes('\n')));

function contentTypeOf(headers: [string, string][]): string {
  return headers.find(([name]) => name === 'content-type')?.[1] ?? '';
}

/** One case over a real socket; `path` is fresh per case so a repeated key is its own scope. */
async function socketCase(url: string, storeCalls: () => number, lines: string[], path: string) {
  const before = storeCalls();
  const res = await rawRequest(url, {
    method: 'POST',
    path,
    headers: [
      ...lines.map((line): [string, string] => ['idempotency-key', line]),
      ['authorization', 'Bearer sock'],
    ],
  });
  const what = `${JSON.stringify(lines)} → ${res.status} ${res.body.toString('latin1').slice(0, 200)}`;
  assert.ok(res.status < 500, what);
  if (lines.some(outsideFieldGrammar)) {
    // A malformed message: refused by the HTTP layer (node's parser or the gateway) or by idemkit.
    const correct = res.status === 400 && storeCalls() === before;
    report.count('malformed-keys', correct);
    assert.ok(correct, `${what}: control bytes in a field value must get 400 with no store call`);
    return;
  }
  // The server receives each field line without its surrounding whitespace (RFC 9110 §5.5).
  const expected = keyOracle(lines.map(trimOws));
  if (expected === undefined) {
    const body = res.body.toString('utf8');
    const correct =
      res.status === 400 &&
      /^application\/problem\+json/.test(contentTypeOf(res.headers)) &&
      (JSON.parse(body) as { type?: string }).type === INVALID_KEY &&
      storeCalls() === before;
    report.count('malformed-keys', correct);
    assert.ok(correct, `${what}: must be 400 ${INVALID_KEY} problem+json with no store call`);
  } else {
    report.count('valid-keys', res.status === 201);
    assert.equal(res.status, 201, what);
  }
}

describe(`Idempotency-Key fuzz (seed ${SEED})`, () => {
  it(`${IN_PROCESS_CASES} generated keys through begin(): the oracle decides, invalid ones never reach the store`, async () => {
    const before = { ...report.get('malformed-keys') };
    await checked(
      fc.asyncProperty(keyFieldLines, minKeyLengths, (lines, min) => keyCase(engineSystem, lines, min)),
      IN_PROCESS_CASES,
    );
    // The generator must reach both sides often, or the run proves little.
    const invalid = report.get('malformed-keys').tried - before.tried;
    assert.ok(
      invalid > 2_000 && IN_PROCESS_CASES - invalid > 2_000,
      `${invalid} invalid of ${IN_PROCESS_CASES}`,
    );
  });

  it(`${SOCKET_CASES} generated key field lines over real sockets to the fetch adapter: 400 invalid-key problem+json or the handler's answer`, async () => {
    const spy = countingStore(memoryStore(quiet));
    const server = await serveFetch(
      withIdempotency(async () => new Response('ok', { status: 201 }), { store: spy.store, ...quiet }),
    );
    after(() => server.close());
    let n = 0;
    await checked(
      fc.asyncProperty(socketLines, (lines) => socketCase(server.url, spy.calls, lines, `/fuzz/${n++}`)),
      SOCKET_CASES,
    );
  });

  it(`${SOCKET_CASES} generated key field lines over real sockets to the gateway: the same answers, the upstream never sees an invalid key`, async () => {
    let forwarded = 0;
    const upstream = await serveFetch(() => {
      forwarded++;
      return new Response('ok', { status: 201 });
    });
    const spy = countingStore(memoryStore(quiet));
    const gateway = await startGateway({
      config: loopbackGatewayConfig(upstream.url),
      store: spy.store,
      engine: quiet,
    });
    after(async () => {
      await gateway.close();
      await upstream.close();
    });
    const valid = report.get('valid-keys').tried;
    let n = 0;
    await checked(
      fc.asyncProperty(socketLines, (lines) => socketCase(gateway.url, spy.calls, lines, `/fuzz/${n++}`)),
      SOCKET_CASES,
    );
    assert.equal(forwarded, report.get('valid-keys').tried - valid, 'only valid keys were forwarded');
  });

  it('the same checks catch an engine with a lax validator (negative control)', async () => {
    const out = await fc.check(
      fc.asyncProperty(keyFieldLines, minKeyLengths, (lines, min) =>
        keyCase(laxSystem, lines, min, () => {}),
      ),
      { seed: SEED, numRuns: 2_000 },
    );
    assert.equal(out.failed, true, 'a validator that accepts anything non-empty must be caught');
    assert.match(String((out.errorInstance as Error).message), /must be refused|≡/);
  });
});
