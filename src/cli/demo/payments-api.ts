import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * The demo's sample payments API: every `POST /charges` charges the card, with no idempotency of
 * its own, like most APIs. It records each charge per operation id in a ledger, which is how the
 * demo counts duplicates: an operation charged twice is a customer billed twice.
 */
export interface PaymentsApi {
  url: string;
  /** Charges per operation id. */
  readonly ledger: ReadonlyMap<string, number>;
  /** Resolves once no charge is being processed (a client may have given up on one meanwhile). */
  idle(maxWaitMs: number): Promise<void>;
  close(): Promise<void>;
}

export interface PaymentsApiOptions {
  /** Processing time per charge, drawn uniformly from this range. @default [20, 60] */
  latencyMs?: readonly [number, number];
}

export async function startPaymentsApi(options: PaymentsApiOptions = {}): Promise<PaymentsApi> {
  const [minMs, maxMs] = options.latencyMs ?? [20, 60];
  const ledger = new Map<string, number>();
  let processing = 0;

  const server = createServer((req, res) => {
    if (req.method !== 'POST' || req.url !== '/charges') {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      let charge: { operation?: unknown; amount?: unknown; currency?: unknown };
      try {
        charge = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"invalid json"}');
        return;
      }
      if (typeof charge.operation !== 'string' || typeof charge.amount !== 'number') {
        res
          .writeHead(400, { 'content-type': 'application/json' })
          .end('{"error":"operation and amount are required"}');
        return;
      }
      // The card is charged now; everything after this line can still fail on the way back.
      const operation = charge.operation;
      ledger.set(operation, (ledger.get(operation) ?? 0) + 1);
      processing++;
      setTimeout(
        () => {
          processing--;
          const id = `ch_${randomBytes(8).toString('hex')}`;
          const body = JSON.stringify({
            id,
            operation,
            amount: charge.amount,
            currency: charge.currency,
            status: 'succeeded',
          });
          res.writeHead(201, { 'content-type': 'application/json', location: `/charges/${id}` }).end(body);
        },
        minMs + Math.random() * (maxMs - minMs),
      );
    });
  });
  server.keepAliveTimeout = 30_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    ledger,
    async idle(maxWaitMs) {
      const deadline = Date.now() + maxWaitMs;
      while (processing > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
