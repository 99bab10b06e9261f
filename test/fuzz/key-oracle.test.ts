import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { withIdempotency } from '../../src/adapters/fetch.js';
import { createIdempotency, memoryStore } from '../../src/index.js';
import { rawRequest } from '../../src/testing/raw-http.js';
import { serveFetch } from '../../src/testing/serve-fetch.js';
import { countingStore } from '../../src/testing/store-spy.js';

/*
 * Key fuzz: generated Idempotency-Key field values against an oracle written here from the rules
 * in docs/guarantees.md (not by calling src/core/key.ts). Invalid keys must get 400 invalid-key
 * with zero store calls; valid ones are claimed; nothing ever answers 5xx, hangs or crashes.
 * The seed is printed; `FUZZ_SEED=<n>` replays a run.
 */

const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
const IN_PROCESS_CASES = 10_000;
const SOCKET_CASES = 500;
const quiet = { onWarning() {} };

/** The rules: one field line; SP/HTAB trimmed; a bare value or an RFC 8941 sf-string; 1–255 of 0x21–0x7E. */
function oracle(lines: readonly string[]): string | undefined {
  if (lines.length !== 1) return undefined;
  let raw = lines[0] as string;
  while (raw.startsWith(' ') || raw.startsWith('\t')) raw = raw.slice(1);
  while (raw.endsWith(' ') || raw.endsWith('\t')) raw = raw.slice(0, -1);
  let key = '';
  if (raw.startsWith('"')) {
    let closed = false;
    for (let i = 1; i < raw.length; i++) {
      const ch = raw[i] as string;
      if (ch === '\\') {
        const next = raw[i + 1];
        if (next !== '"' && next !== '\\') return undefined;
        key += next;
        i++;
      } else if (ch === '"') {
        if (i !== raw.length - 1) return undefined;
        closed = true;
      } else key += ch;
    }
    if (!closed) return undefined;
  } else {
    if (/["\\,;]/.test(raw)) return undefined;
    key = raw;
  }
  if (key.length < 1 || key.length > 255) return undefined;
  for (const ch of key) if (ch.charCodeAt(0) < 0x21 || ch.charCodeAt(0) > 0x7e) return undefined;
  return key;
}

const interesting = fc.constantFrom(
  ' ',
  '\t',
  '"',
  '\\',
  ',',
  ';',
  '=',
  '\0',
  '\r',
  '\n',
  '\x7f',
  'é',
  '€',
  'a',
  'Z',
  '0',
  '-',
  '~',
);
const keyText = fc.oneof(
  fc.uuid(),
  fc.string({ unit: 'grapheme-ascii', maxLength: 40 }),
  fc.string({ unit: interesting, maxLength: 12 }),
  fc.string({ unit: fc.constantFrom('a', 'b', '"', '\\'), minLength: 1, maxLength: 8 }).map((s) => `"${s}"`),
  fc.integer({ min: 250, max: 260 }).map((n) => 'k'.repeat(n)),
  fc.tuple(fc.uuid(), fc.constantFrom(';a=1', ', x', '"', ' ', '\t')).map(([u, tail]) => u + tail),
);
const fieldLines = fc.oneof(
  { weight: 8, arbitrary: keyText.map((k) => [k]) },
  { weight: 1, arbitrary: fc.array(fc.uuid(), { minLength: 2, maxLength: 3 }) },
);

/** fc.assert, with the failing case's own assertion message in the test report. */
async function checked<T>(property: fc.IAsyncPropertyWithHooks<T>, options: fc.Parameters<T>): Promise<void> {
  const out = await fc.check(property, options);
  if (out.failed) {
    const cause = out.errorInstance instanceof Error ? out.errorInstance.message : String(out.errorInstance);
    assert.fail(`seed ${SEED}, counterexample ${fc.stringify(out.counterexample)}: ${cause}`);
  }
}

describe(`Idempotency-Key fuzz (seed ${SEED})`, () => {
  it(`${IN_PROCESS_CASES} generated keys through begin(): the oracle decides, invalid ones never reach the store`, async () => {
    let stats = { valid: 0, invalid: 0 };
    await checked(
      fc.asyncProperty(fieldLines, async (lines) => {
        const spy = countingStore(memoryStore(quiet));
        const idem = createIdempotency({ store: spy.store, ...quiet });
        const expected = oracle(lines);
        const d = await idem.begin({
          method: 'POST',
          path: '/fuzz',
          headers: {
            'idempotency-key': lines.length === 1 ? (lines[0] as string) : lines,
            authorization: 'Bearer f',
          },
          body: new Uint8Array(0),
        });
        if (expected === undefined) {
          stats.invalid++;
          assert.equal(d.kind, 'reject', JSON.stringify(lines));
          assert.equal(d.kind === 'reject' && d.code, 'invalid-key');
          assert.equal(spy.calls(), 0, 'an invalid key never reaches the store');
        } else {
          stats.valid++;
          assert.equal(d.kind, 'execute', JSON.stringify(lines));
          if (d.kind === 'execute') await d.commit({ status: 201, headers: [], body: new Uint8Array(0) });
          // The same key, sent again quoted, is the same key: a replay.
          const quoted = `"${expected.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
          const again = await idem.begin({
            method: 'POST',
            path: '/fuzz',
            headers: { 'idempotency-key': quoted, authorization: 'Bearer f' },
            body: new Uint8Array(0),
          });
          assert.equal(again.kind, 'replay', `${JSON.stringify(lines)} ≡ ${quoted}`);
        }
        await idem.close();
      }),
      { seed: SEED, numRuns: IN_PROCESS_CASES },
    );
    assert.ok(stats.valid > 1_000 && stats.invalid > 1_000, JSON.stringify(stats));
    stats = { valid: 0, invalid: 0 };
  });

  it(`${SOCKET_CASES} generated keys over a real socket: 400 problem+json or the handler's answer, never 5xx`, async () => {
    const spy = countingStore(memoryStore(quiet));
    const server = await serveFetch(
      withIdempotency(async () => new Response('ok', { status: 201 }), { store: spy.store, ...quiet }),
    );
    after(() => server.close());
    const latin1 = fc.string({
      unit: fc.integer({ min: 0x20, max: 0xff }).map((c) => String.fromCharCode(c)),
      maxLength: 30,
    });
    await checked(
      fc.asyncProperty(fc.oneof(keyText, latin1), fc.nat(), async (key, n) => {
        // Bytes as written (latin1). Control bytes and DEL never reach idemkit: node's HTTP parser
        // answers them with its own bare 400 (the in-process cases above cover them).
        if ([...key].some((ch) => (ch < ' ' && ch !== '\t') || ch === '\x7f')) return;
        const before = spy.calls();
        const res = await rawRequest(server.url, {
          method: 'POST',
          path: `/fuzz/${n}`,
          headers: [
            ['idempotency-key', key],
            ['authorization', 'Bearer sock'],
          ],
        });
        assert.ok(res.status < 500, `${JSON.stringify(key)} → ${res.status}`);
        // On the wire a header value is latin1 bytes; the oracle judges it as received (node trims it).
        const expected = oracle([key.replace(/^[ \t]+|[ \t]+$/g, '')]);
        if (expected === undefined) {
          assert.equal(res.status, 400, JSON.stringify(key));
          assert.match(
            res.headers.find(([name]) => name === 'content-type')?.[1] ?? '',
            /application\/problem\+json/,
            `${JSON.stringify(key)}: ${JSON.stringify(res.headers)} ${res.body.toString()}`,
          );
          assert.equal(spy.calls(), before, 'no store call for an invalid key');
        } else {
          assert.equal(res.status, 201, JSON.stringify(key));
        }
      }),
      { seed: SEED, numRuns: SOCKET_CASES },
    );
  });

  it('the oracle check catches a lax validator (negative control)', async () => {
    // A validator that forgets the printable-ASCII rule: the same property must fail on it.
    const lax = (lines: readonly string[]) => (lines.length === 1 && lines[0] !== '' ? lines[0] : undefined);
    const found = fc.check(
      fc.property(fieldLines, (lines) => lax(lines) === oracle(lines)),
      { seed: SEED, numRuns: 2_000 },
    );
    assert.equal(found.failed, true);
  });
});
