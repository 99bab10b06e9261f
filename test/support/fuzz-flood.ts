import { randomUUID } from 'node:crypto';
import { Agent, request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { IdempotencyOptions } from '../../src/core/options.js';
import type { IdempotencyStore } from '../../src/core/store.js';
import { startGateway } from '../../src/gateway/server.js';
import { serveFetch } from '../../src/testing/serve-fetch.js';
import { loopbackGatewayConfig } from './gateway-start.js';

/*
 * A unique-key flood at the gateway (T48): one principal sends a fresh key with every request,
 * as fast as its connections allow, bounded in count and seconds, while other principals send
 * ordinary traffic (new keys, and retries that must replay). Everything is recorded for the
 * test to judge: every answer's status, problem type and Retry-After, the others' latencies,
 * and how many requests of each principal the upstream ran at once.
 */

export interface FloodSettings {
  store: IdempotencyStore;
  engine?: Partial<IdempotencyOptions>;
  /** How long the upstream takes per request. */
  upstreamDelayMs: number;
  /** Flooder's concurrent connections. */
  floodConcurrency: number;
  /** Bounds on the flood: it also stops as soon as the others are done. */
  floodMaxRequests: number;
  floodMaxMs: number;
  /** Other principals, each sending `otherRequests` requests one after another. */
  others: number;
  otherRequests: number;
}

export interface Answer {
  status: number;
  problemType: string | undefined;
  retryAfter: string | undefined;
  replayed: boolean;
  ms: number;
}

export interface FloodResult {
  flood: Answer[];
  others: Answer[];
  /** Whether each other answer was for a retry of a key already answered. */
  otherRetries: boolean[];
  /** Keys of other principals that ran (each holds a record). */
  othersCompletedKeys: number;
  /** The most requests of one principal the upstream was running at once. */
  maxUpstreamConcurrency: Map<string, number>;
  floodMs: number;
  othersMs: number;
}

export const FLOODER = 'Bearer flooder';
export const otherPrincipal = (i: number) => `Bearer other-${i}`;

function post(agent: Agent, url: string, principal: string, key: string): Promise<Answer> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(`${url}/orders`, {
      method: 'POST',
      agent,
      headers: { authorization: principal, 'idempotency-key': key, 'content-type': 'application/json' },
      timeout: 10_000,
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const problem = /^application\/problem\+json/.test(res.headers['content-type'] ?? '');
        resolve({
          status: res.statusCode ?? 0,
          problemType: problem ? (JSON.parse(body) as { type?: string }).type : undefined,
          retryAfter: res.headers['retry-after'],
          replayed: res.headers['idempotent-replayed'] === 'true',
          ms: performance.now() - started,
        });
      });
    });
    req.end('{"item":"book"}');
  });
}

export async function runFlood(settings: FloodSettings): Promise<FloodResult> {
  const running = new Map<string, number>();
  const maxUpstreamConcurrency = new Map<string, number>();
  const upstream = await serveFetch(async (req) => {
    const who = req.headers.get('authorization') ?? '';
    const now = (running.get(who) ?? 0) + 1;
    running.set(who, now);
    maxUpstreamConcurrency.set(who, Math.max(now, maxUpstreamConcurrency.get(who) ?? 0));
    try {
      if (settings.upstreamDelayMs > 0) await sleep(settings.upstreamDelayMs);
      return new Response('{"ordered":true}', {
        status: 201,
        headers: { 'content-type': 'application/json' },
      });
    } finally {
      running.set(who, (running.get(who) ?? 1) - 1);
    }
  });
  const gateway = await startGateway({
    config: loopbackGatewayConfig(upstream.url),
    store: settings.store,
    engine: { onWarning() {}, ...settings.engine },
  });
  const floodAgent = new Agent({ keepAlive: true, maxSockets: settings.floodConcurrency });
  const othersAgent = new Agent({ keepAlive: true, maxSockets: settings.others });
  let othersCompletedKeys = 0;
  try {
    let othersDone = false;
    const flood: Answer[] = [];
    const started = performance.now();
    const floodWorker = async () => {
      while (
        !othersDone &&
        flood.length < settings.floodMaxRequests &&
        performance.now() - started < settings.floodMaxMs
      ) {
        flood.push(await post(floodAgent, gateway.url, FLOODER, randomUUID()));
      }
    };
    const others: Answer[] = [];
    const otherRetries: boolean[] = [];
    const other = async (i: number) => {
      let last = '';
      for (let n = 0; n < settings.otherRequests; n++) {
        // Every fourth request retries the previous key, as a client whose answer was lost would.
        const retry = n % 4 === 3;
        const key = retry ? last : randomUUID();
        const answer = await post(othersAgent, gateway.url, otherPrincipal(i), key);
        if (!retry && answer.status === 201) othersCompletedKeys++;
        others.push(answer);
        otherRetries.push(retry);
        last = key;
      }
    };
    const floodDone = Promise.all(Array.from({ length: settings.floodConcurrency }, floodWorker)).then(
      () => performance.now() - started,
    );
    // The flood gets a head start, so the others arrive when the flooder already holds its share.
    await sleep(200);
    const othersStarted = performance.now();
    await Promise.all(Array.from({ length: settings.others }, (_, i) => other(i)));
    const othersMs = performance.now() - othersStarted;
    othersDone = true;
    const floodMs = await floodDone;
    return {
      flood,
      others,
      otherRetries,
      othersCompletedKeys,
      maxUpstreamConcurrency,
      floodMs,
      othersMs,
    };
  } finally {
    floodAgent.destroy();
    othersAgent.destroy();
    await gateway.close();
    await upstream.close();
  }
}

/**
 * The store, passed through, counting the records each partition (tenant + principal, as the
 * engine names it to the store) has been granted: a claim acquired on a key it had not held.
 * Nothing expires or is released during a flood run, so this is the partition's record count.
 */
export function recordsPerPartition(store: IdempotencyStore): { store: IdempotencyStore; max(): number } {
  const granted = new Map<string, number>();
  let max = 0;
  const claim: IdempotencyStore['claim'] = async (request) => {
    const result = await store.claim(request);
    if (result.outcome === 'acquired' && !result.takeover) {
      const name = request.partition ?? '';
      const count = (granted.get(name) ?? 0) + 1;
      granted.set(name, count);
      max = Math.max(max, count);
    }
    return result;
  };
  // An object spread would drop the methods of a class-based store; bind them instead.
  const wrapped = Object.create(store) as IdempotencyStore;
  return { store: Object.assign(wrapped, { claim }), max: () => max };
}

/** The p-th percentile (0–100) of some latencies, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}
