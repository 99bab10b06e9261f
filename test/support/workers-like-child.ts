/**
 * Runs a keyed POST twice through the fetch adapter in a runtime shaped like Cloudflare Workers:
 * timers are plain numbers (no `unref()`) and there is no `process.emitWarning`. Set up before
 * idemkit is imported, as the runtime would be. Prints one JSON line with what it saw.
 */
const nodeSetInterval = globalThis.setInterval;
const nodeSetTimeout = globalThis.setTimeout;
const ids = new Map<number, unknown>();
let next = 1;
const asNumber = (timer: unknown): number => {
  const id = next++;
  ids.set(id, timer);
  (timer as { unref?: () => void }).unref?.();
  return id;
};
Object.assign(globalThis, {
  setInterval: (fn: () => void, ms?: number) => asNumber(nodeSetInterval(fn, ms)),
  setTimeout: (fn: () => void, ms?: number) => asNumber(nodeSetTimeout(fn, ms)),
  clearInterval: (id: number) => clearTimeout(ids.get(id) as NodeJS.Timeout),
  clearTimeout: (id: number) => clearTimeout(ids.get(id) as NodeJS.Timeout),
});
const warnings: string[] = [];
(process as { emitWarning?: unknown }).emitWarning = undefined;
console.warn = (message: string) => warnings.push(message);

const { withIdempotency } = await import('../../src/adapters/fetch.js');
const { memoryStore } = await import('../../src/index.js');
let executions = 0;
const handler = withIdempotency(
  async () => {
    executions++;
    return Response.json({ ok: true }, { status: 201 });
  },
  { store: memoryStore() },
);
const post = () =>
  handler(
    new Request('http://worker.example/pay', {
      method: 'POST',
      headers: { 'idempotency-key': 'k1', authorization: 'Bearer a', 'content-type': 'application/json' },
      body: '{}',
    }),
  );
const first = await post();
const second = await post();
console.log(
  JSON.stringify({
    statuses: [first.status, second.status],
    replayed: second.headers.get('idempotent-replayed'),
    executions,
    warned: warnings.some((w) => w.includes('IdemkitWarning')),
  }),
);
process.exit(0);
