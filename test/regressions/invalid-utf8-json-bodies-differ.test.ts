// Audit: JSON bodies were decoded with Buffer.toString('utf8'), which turns every invalid byte
// into U+FFFD, so two different bodies canonicalised to the same text and shared a fingerprint.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { withIdempotency } from '../../src/adapters/fetch.js';
import { createIdempotency, memoryStore } from '../../src/index.js';
import { serveFetch } from '../../src/testing/serve-fetch.js';
import { request } from '../support/engine-helpers.js';

const quiet = { onWarning() {} };
/** `{"a":"<byte>"}` with one raw byte that is not valid UTF-8 on its own. */
const withByte = (byte: number) =>
  Buffer.concat([Buffer.from('{"a":"'), Buffer.from([byte]), Buffer.from('"}')]);

describe('bodies that are not valid UTF-8', () => {
  it('two JSON-typed bodies differing only in invalid bytes are different requests: 422 key-reused', async () => {
    const idem = createIdempotency({ store: memoryStore(quiet), sweepIntervalMs: 0, ...quiet });
    const first = await idem.begin(request({ key: 'k', body: withByte(0xff) }));
    assert.equal(first.kind, 'execute');
    await first.commit({ status: 201, headers: [], body: Buffer.from('{}') });

    const other = await idem.begin(request({ key: 'k', body: withByte(0xfe) }));
    const same = await idem.begin(request({ key: 'k', body: withByte(0xff) }));

    assert.equal(other.kind, 'reject');
    assert.equal(other.code, 'key-reused');
    assert.equal(same.kind, 'replay', 'the byte-identical retry still replays');
  });

  it('a body starting with a byte-order mark is not the same request as one without', async () => {
    const idem = createIdempotency({ store: memoryStore(quiet), sweepIntervalMs: 0, ...quiet });
    const plain = Buffer.from('{"a":1}');
    const first = await idem.begin(request({ key: 'bom', body: plain }));
    assert.equal(first.kind, 'execute');
    await first.commit({ status: 201, headers: [], body: Buffer.from('{}') });

    const withBom = await idem.begin(
      request({ key: 'bom', body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), plain]) }),
    );
    assert.equal(withBom.kind, 'reject');
    assert.equal(withBom.code, 'key-reused');
  });

  it('over HTTP: the second body gets 422 and the handler runs once', async () => {
    let executions = 0;
    const served = await serveFetch(
      withIdempotency(() => Response.json({ n: ++executions }, { status: 201 }), {
        store: memoryStore(quiet),
        sweepIntervalMs: 0,
        ...quiet,
      }),
    );
    try {
      const send = (byte: number) =>
        fetch(`${served.url}/pay`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            authorization: 'Bearer u1',
            'idempotency-key': 'utf8-key',
          },
          body: withByte(byte),
          signal: AbortSignal.timeout(5_000),
        });
      assert.equal((await send(0xff)).status, 201);
      const other = await send(0xfe);
      assert.equal(other.status, 422);
      assert.equal(((await other.json()) as { type: string }).type, 'urn:idemkit:problem:key-reused');
      assert.equal(executions, 1);
    } finally {
      await served.close();
    }
  });

  it('the body-field carrier does not read a key out of a body that is not valid UTF-8', async () => {
    const idem = createIdempotency({
      store: memoryStore(quiet),
      keyFrom: { bodyField: 'request_id' },
      sweepIntervalMs: 0,
      ...quiet,
    });
    const body = Buffer.concat([
      Buffer.from('{"request_id":"r1","note":"'),
      Buffer.from([0xff]),
      Buffer.from('"}'),
    ]);
    const d = await idem.begin(request({ key: null, body }));
    assert.equal(d.kind, 'reject');
    assert.equal(d.code, 'missing-key', 'a body that is not UTF-8 is not JSON (RFC 8259 §8.1)');
  });
});
