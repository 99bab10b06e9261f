import {
  CreateTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import { StoreMisconfiguredError } from '../core/errors.js';
import type { DynamoDBClientLike } from './dynamodb-client.js';
import { errorName, messageOf } from './dynamodb-client.js';

/*
 * The table: one partition key `id` (string), on-demand billing, TTL on `ttl`. createTable() is
 * for deploy time and `idemkit migrate`; the store never creates its table on a request.
 */

export interface CreateTableOptions {
  client: DynamoDBClientLike;
  tableName: string;
  /** @default 'PAY_PER_REQUEST' (provisioned: pass readCapacity and writeCapacity) */
  billingMode?: 'PAY_PER_REQUEST' | 'PROVISIONED';
  readCapacity?: number;
  writeCapacity?: number;
  /** How long to wait for the table to become ACTIVE. @default 60_000 */
  waitMs?: number;
  /** Told when TTL cannot be turned on (a local emulator without the TTL API). */
  onWarning?: (message: string) => void;
}

/**
 * Creates the table if it does not exist, waits until it is ACTIVE and turns on TTL on `ttl`.
 * Safe to run again and from several hosts at once. Returns whether it created the table.
 * @example
 * await createTable({ client, tableName: 'idemkit' })
 */
export async function createTable(options: CreateTableOptions): Promise<boolean> {
  const { client, tableName } = options;
  const provisioned = options.billingMode === 'PROVISIONED';
  let created = true;
  try {
    await client.send(
      new CreateTableCommand({
        TableName: tableName,
        AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
        BillingMode: provisioned ? 'PROVISIONED' : 'PAY_PER_REQUEST',
        ...(provisioned
          ? {
              ProvisionedThroughput: {
                ReadCapacityUnits: options.readCapacity ?? 5,
                WriteCapacityUnits: options.writeCapacity ?? 5,
              },
            }
          : {}),
      }),
    );
  } catch (error) {
    if (errorName(error) !== 'ResourceInUseException') throw error;
    created = false;
  }
  await waitUntilActive(client, tableName, options.waitMs ?? 60_000);
  try {
    await client.send(
      new UpdateTimeToLiveCommand({
        TableName: tableName,
        TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true },
      }),
    );
  } catch (error) {
    const name = errorName(error);
    // Already on answers ValidationException ("TimeToLive is already enabled").
    if (name === 'ValidationException' && /already enabled/i.test(messageOf(error))) return created;
    if (name !== 'UnknownOperationException') throw error;
    (options.onWarning ?? ((m: string) => process.emitWarning(m, 'IdemkitWarning')))(
      `idemkit dynamodb: this endpoint has no TTL API, so expired records are never deleted (${tableName})`,
    );
  }
  return created;
}

async function waitUntilActive(client: DynamoDBClientLike, tableName: string, waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (let pause = 100; ; pause = Math.min(pause * 2, 2_000)) {
    const described = (await client.send(new DescribeTableCommand({ TableName: tableName }))) as {
      Table?: { TableStatus?: string };
    };
    if (described.Table?.TableStatus === 'ACTIVE') return;
    if (Date.now() + pause > deadline) {
      throw new Error(`dynamodb table ${tableName} is not ACTIVE after ${waitMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
}

/**
 * The store's startup check: the table exists with `id` (string) as its only key; TTL off is a
 * warning (records would never be deleted, but every decision stays right).
 */
export async function checkTable(
  client: DynamoDBClientLike,
  tableName: string,
  onWarning: (message: string) => void,
): Promise<void> {
  const migrate = `create it with createTable({ client, tableName }) or idemkit migrate --store dynamodb://${tableName}`;
  let table: { KeySchema?: { AttributeName?: string; KeyType?: string }[]; AttributeDefinitions?: unknown[] };
  try {
    const described = (await client.send(new DescribeTableCommand({ TableName: tableName }))) as {
      Table?: typeof table;
    };
    table = described.Table ?? {};
  } catch (error) {
    if (errorName(error) === 'ResourceNotFoundException') {
      throw new StoreMisconfiguredError(`idemkit dynamodb: table ${tableName} does not exist; ${migrate}`, {
        cause: error,
      });
    }
    throw error;
  }
  const keys = table.KeySchema ?? [];
  const types = (table.AttributeDefinitions ?? []) as { AttributeName?: string; AttributeType?: string }[];
  const idType = types.find((d) => d.AttributeName === 'id')?.AttributeType;
  if (keys.length !== 1 || keys[0]?.AttributeName !== 'id' || keys[0]?.KeyType !== 'HASH' || idType !== 'S') {
    throw new StoreMisconfiguredError(
      `idemkit dynamodb: table ${tableName} must have one partition key "id" of type S and no sort key; ${migrate}`,
    );
  }
  try {
    const ttl = (await client.send(new DescribeTimeToLiveCommand({ TableName: tableName }))) as {
      TimeToLiveDescription?: { TimeToLiveStatus?: string; AttributeName?: string };
    };
    const { TimeToLiveStatus: status, AttributeName: attribute } = ttl.TimeToLiveDescription ?? {};
    if ((status === 'ENABLED' || status === 'ENABLING') && attribute === 'ttl') return;
    onWarning(
      `idemkit dynamodb: TTL on attribute "ttl" is not enabled on ${tableName} (${status ?? 'unknown'}); expired records are ignored but never deleted`,
    );
  } catch (error) {
    if (errorName(error) !== 'UnknownOperationException') throw error;
  }
}
