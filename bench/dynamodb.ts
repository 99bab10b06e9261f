import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { DynamoDBClient, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { createTable, dynamodbStore } from '../src/stores/dynamodb.js';
import { responseAttribute } from '../src/stores/dynamodb-item.js';
import { firstClaim, ownerWrite } from '../src/stores/dynamodb-writes.js';
import type { StoredResponse } from '../src/stores/types.js';
import { freePort } from './lib/free-port.js';

/*
 * `npm run bench -- dynamodb [--rounds 3] [--pairs 2000] [--endpoint http://127.0.0.1:8000]`
 * claim + complete pairs per second through dynamodbStore, next to the raw SDK sending the same
 * two commands (the store's own PutItem and UpdateItem inputs) on the same client, interleaved
 * round by round; medians over rounds. 50 pairs in flight. Without --endpoint it starts dynalite
 * as a child process on a loopback port (so it does not share this process's CPU); dynalite is
 * far slower than DynamoDB, so the ratio is what to read, not the absolute rate.
 */

const LANES = 50;
const RESPONSE: StoredResponse = {
  status: 201,
  headers: [['content-type', 'application/json']],
  body: Buffer.from('{"id":"ch_123","amount":1000,"currency":"eur"}'),
};

interface Pair {
  claim(key: string, token: string): Promise<unknown>;
  complete(key: string, token: string): Promise<unknown>;
}

async function measure(pair: Pair, pairs: number, run: string): Promise<number> {
  let next = 0;
  async function lane(): Promise<void> {
    while (next < pairs) {
      const key = `${run}-${next++}`;
      const token = randomBytes(16).toString('hex');
      await pair.claim(key, token);
      await pair.complete(key, token);
    }
  }
  const started = performance.now();
  await Promise.all(Array.from({ length: LANES }, lane));
  return pairs / ((performance.now() - started) / 1000);
}

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i === -1 ? undefined : argv[i + 1];
}

/** dynalite (in memory) as a child process; resolves once it listens. */
async function startDynalite(): Promise<{ endpoint: string; stop(): void }> {
  const port = await freePort();
  const cli = createRequire(import.meta.url).resolve('dynalite/cli.js');
  const child = spawn(process.execPath, [cli, '--host', '127.0.0.1', '--port', String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`dynalite exited with ${code}`)));
  });
  return { endpoint: `http://127.0.0.1:${port}`, stop: () => child.pid && process.kill(child.pid) };
}

/** Runs the bench and prints its table; `argv` as after `npm run bench -- dynamodb`. */
export async function run(argv: string[] = []): Promise<void> {
  const rounds = Number(flag(argv, 'rounds') ?? 3);
  const pairs = Number(flag(argv, 'pairs') ?? 2_000);
  const given = flag(argv, 'endpoint');
  const local = given === undefined ? await startDynalite() : undefined;
  const client = new DynamoDBClient({
    endpoint: given ?? local?.endpoint ?? '',
    region: 'us-east-1',
    credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' },
    maxAttempts: 1,
  });
  try {
    const tableName = `idemkit-bench-${randomBytes(4).toString('hex')}`;
    await createTable({ client, tableName, onWarning() {} });
    const store = dynamodbStore({ client, tableName, onWarning() {} });
    const request = (key: string, token: string) => ({
      key,
      fingerprint: 'fp',
      token,
      leaseMs: 30_000,
      retentionMs: 60_000,
    });
    const clocked = () => ({ now: Date.now(), skewMs: 1_000 });
    const variants: [string, Pair][] = [
      [
        'raw SDK, the same PutItem + UpdateItem',
        {
          claim: (key, token) =>
            client.send(new PutItemCommand(firstClaim(tableName, request(key, token), clocked()))),
          complete: (key, token) =>
            client.send(
              new UpdateItemCommand(
                ownerWrite(
                  tableName,
                  key,
                  token,
                  { kind: 'complete', response: responseAttribute(RESPONSE, 409_600), retentionMs: 60_000 },
                  randomBytes(8).toString('hex'),
                  clocked(),
                ),
              ),
            ),
        },
      ],
      [
        'idemkit dynamodbStore',
        {
          claim: (key, token) => store.claim(request(key, token)),
          complete: (key, token) => store.complete({ key, token, response: RESPONSE, retentionMs: 60_000 }),
        },
      ],
    ];
    const rates = new Map<string, number[]>(variants.map(([name]) => [name, []]));
    await measure(variants[1]?.[1] as Pair, Math.min(pairs, 500), 'warm-up');
    for (let round = 0; round < rounds; round++) {
      for (const [name, pair] of variants) {
        rates.get(name)?.push(await measure(pair, pairs, `r${round}-${name.length}`));
      }
    }
    const median = (values: number[]) =>
      [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
    const raw = median(rates.get(variants[0]?.[0] ?? '') ?? []);
    console.log(
      `dynamodb (${given ?? 'dynalite child process'}), ${pairs} pairs × ${rounds} rounds, ${LANES} in flight`,
    );
    console.log('variant'.padEnd(42), 'pairs/s'.padStart(9), 'vs raw'.padStart(8));
    for (const [name] of variants) {
      const rate = median(rates.get(name) ?? []);
      console.log(
        name.padEnd(42),
        rate.toFixed(0).padStart(9),
        `${((rate / raw) * 100).toFixed(0)}%`.padStart(8),
      );
    }
  } finally {
    client.destroy();
    local?.stop();
  }
}
