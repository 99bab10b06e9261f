// The handler's ctx makes its two functions on first read (most handlers never call them). A
// handler may still take them off the object and call them later, as it could when they were
// own properties: these tests pin that, and what each one does.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createIdempotency, memoryStore } from '../../src/index.js';
import { request, response } from '../support/engine-helpers.js';

const quiet = { onWarning() {} };

describe('the handler context', () => {
  it('effectsStarted taken off ctx still marks the execution: a failure then holds the key uncertain', async () => {
    const idem = createIdempotency({ store: memoryStore(quiet), sweepIntervalMs: 0, ...quiet });
    const d = await idem.begin(request({ key: 'effects' }));
    assert.equal(d.kind, 'execute');
    const { effectsStarted } = d.ctx;
    assert.equal(d.ctx.effectsStarted, effectsStarted, 'the same function on every read');
    effectsStarted();
    const result = await d.abort(new Error('the card network timed out'));
    assert.equal(result.disposition, 'uncertain');
    const retry = await idem.begin(request({ key: 'effects' }));
    assert.equal(retry.kind === 'reject' && retry.code, 'outcome-uncertain');
    await idem.close();
  });

  it('without effectsStarted a failure releases the key, and the retry runs', async () => {
    const idem = createIdempotency({ store: memoryStore(quiet), sweepIntervalMs: 0, ...quiet });
    const d = await idem.begin(request({ key: 'plain' }));
    assert.equal(d.kind, 'execute');
    assert.equal((await d.abort(new Error('boom'))).disposition, 'release');
    assert.equal((await idem.begin(request({ key: 'plain' }))).kind, 'execute');
    await idem.close();
  });

  it('downstreamKey taken off ctx gives the same key on the retry after a release, another for another key', async () => {
    const idem = createIdempotency({ store: memoryStore(quiet), sweepIntervalMs: 0, ...quiet });
    const first = await idem.begin(request({ key: 'down' }));
    assert.equal(first.kind, 'execute');
    const { downstreamKey } = first.ctx;
    const before = downstreamKey();
    assert.match(before, /^idemkit-[\w-]{32}$/);
    await first.abort(new Error('released'));
    const retry = await idem.begin(request({ key: 'down' }));
    assert.equal(retry.kind, 'execute');
    assert.equal(retry.ctx.downstreamKey(), before);
    const other = await idem.begin(request({ key: 'other' }));
    assert.equal(other.kind, 'execute');
    assert.notEqual(other.ctx.downstreamKey(), before);
    await retry.commit(response());
    await other.commit(response());
    await idem.close();
  });
});
