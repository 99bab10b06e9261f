import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createIdempotency, type IdempotencyEvent, memoryStore } from '../../src/index.js';
import { manualClock, request, response } from '../support/engine-helpers.js';

const quiet = { onWarning() {} };

describe('engine: leases, takeovers and fencing (F2)', () => {
  it('T15 a stale owner cannot overwrite the result of the attempt that took over', async () => {
    // Arrange: A claims; its lease lapses in store time while it is paused (GC, SIGSTOP).
    const clock = manualClock();
    const store = memoryStore({ clock: clock.now, ...quiet });
    const events: IdempotencyEvent[] = [];
    const idem = createIdempotency({ store, leaseMs: 1_000, ...quiet, onEvent: (e) => events.push(e) });
    const a = await idem.begin(request());
    assert.equal(a.kind, 'execute');
    clock.advance(1_500);

    // Act: B takes over and completes; then A wakes up and tries to complete.
    const b = await idem.begin(request());
    assert.equal(b.kind, 'execute');
    const committedB = await b.commit(response(201, '{"by":"B"}'));
    const committedA = await a.commit(response(201, '{"by":"A"}'));

    // Assert: B's result stands; A's client gets 409 lease-lost, never a 2xx.
    assert.equal(b.ctx.fencingToken, a.ctx.fencingToken + 1);
    assert.equal(committedB.response.status, 201);
    assert.equal(committedA.response.status, 409);
    assert.equal(committedA.disposition, 'lease-lost');
    const replay = await idem.begin(request());
    assert.equal(replay.kind, 'replay');
    assert.equal(Buffer.from(replay.response.body).toString(), '{"by":"B"}');
    assert.equal(events.filter((e) => e.type === 'lease-lost').length, 1);
    assert.deepEqual(
      events.filter((e) => e.type === 'takeover'),
      [{ type: 'takeover', key: b.key, generation: 2 }],
    );
    await idem.close();
  });

  it('a stale owner that fails cannot release the key the next owner holds', async () => {
    const clock = manualClock();
    const store = memoryStore({ clock: clock.now, ...quiet });
    const idem = createIdempotency({ store, leaseMs: 1_000, ...quiet });
    const a = await idem.begin(request());
    clock.advance(1_500);
    const b = await idem.begin(request());
    assert.equal(a.kind, 'execute');
    assert.equal(b.kind, 'execute');

    const aborted = await a.abort(new Error('boom'));

    assert.equal(aborted.disposition, 'lease-lost');
    const duplicate = await idem.begin(request());
    assert.equal(duplicate.kind, 'reject');
    assert.equal(duplicate.code, 'in-progress', 'B still holds the key');
    await b.commit(response());
    await idem.close();
  });

  it('the handler signal fires when a heartbeat finds the lease taken over', async () => {
    const clock = manualClock();
    const store = memoryStore({ clock: clock.now, ...quiet });
    const idem = createIdempotency({ store, leaseMs: 300, ...quiet });
    const a = await idem.begin(request());
    assert.equal(a.kind, 'execute');
    clock.advance(400);
    const b = await idem.begin(request());
    assert.equal(b.kind, 'execute');

    const fired = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 3_000);
      a.ctx.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });

    assert.ok(fired, 'abort signal within one heartbeat interval');
    assert.equal((a.ctx.signal.reason as { code?: string }).code, 'lease-lost');
    await b.commit(response());
    await idem.close();
  });

  it("T16 heartbeats keep a long handler's lease: duplicates get 409, never a takeover", async () => {
    const store = memoryStore(quiet);
    // A heartbeat every leaseMs/3: a 1 s lease survives an event-loop stall of ~600 ms (a GC
    // pause or a busy machine); 300 ms gave ~200 ms, and a stalled renewal lets the duplicate take over.
    const idem = createIdempotency({ store, leaseMs: 1_000, ...quiet });
    const a = await idem.begin(request());
    assert.equal(a.kind, 'execute');

    const deadline = Date.now() + 3_000; // three leases
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      const duplicate = await idem.begin(request());
      assert.equal(duplicate.kind, 'reject');
      assert.equal(duplicate.code, 'in-progress');
    }
    const done = await a.commit(response());

    assert.equal(done.response.status, 201);
    assert.equal(a.ctx.signal.aborted, false);
    assert.equal((await idem.begin(request())).kind, 'replay');
    await idem.close();
  });

  it('downstreamKey() is the same on a retry after takeover, and differs between keys', async () => {
    const clock = manualClock();
    const store = memoryStore({ clock: clock.now, ...quiet });
    const idem = createIdempotency({ store, leaseMs: 1_000, ...quiet });
    const a = await idem.begin(request());
    clock.advance(2_000);
    const b = await idem.begin(request());
    const other = await idem.begin(request({ key: 'key-2' }));
    assert.equal(a.kind, 'execute');
    assert.equal(b.kind, 'execute');
    assert.equal(other.kind, 'execute');

    assert.equal(a.ctx.downstreamKey(), b.ctx.downstreamKey());
    assert.notEqual(a.ctx.downstreamKey(), other.ctx.downstreamKey());
    assert.ok(!a.ctx.downstreamKey().includes('key-1'));
    await b.commit(response());
    await other.commit(response());
    await idem.close();
  });

  it('a lapsed lease with another body is not taken over: 422, never executed', async () => {
    const clock = manualClock();
    const store = memoryStore({ clock: clock.now, ...quiet });
    const idem = createIdempotency({ store, leaseMs: 1_000, ...quiet });
    await idem.begin(request());
    clock.advance(5_000);

    const other = await idem.begin(request({ body: Buffer.from('{"amount":2}') }));

    assert.equal(other.kind, 'reject');
    assert.equal(other.code, 'key-reused');
    await idem.close();
  });
});
