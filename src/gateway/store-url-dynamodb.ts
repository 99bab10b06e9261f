import type { DynamoDBClient, DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';
import type { IdempotencyStore } from '../core/store.js';
import { ConfigError } from './config-error.js';
import { exportsOf, type ImportModule, loadDriver } from './store-url-drivers.js';
import type { GatewayLogger } from './types.js';

/** `dynamodb://TABLE?region=…&endpoint=…&clockSkewMs=…`, parsed without loading the SDK. */
export interface DynamoDBTarget {
  kind: 'dynamodb';
  table: string;
  region?: string;
  endpoint?: string;
  clockSkewMs?: number;
}

const OPTIONS = ['region', 'endpoint', 'clockSkewMs'];

export function parseDynamoDBUrl(url: string, fail: (what: string) => never): DynamoDBTarget {
  const match = /^dynamodb:\/\/([^/?]*)\/?(?:\?(.*))?$/i.exec(url);
  const table = match?.[1] ?? '';
  if (!/^[A-Za-z0-9_.-]{3,255}$/.test(table)) {
    fail(`"${url}": name the table, e.g. dynamodb://idemkit?region=eu-west-1 (3-255 of A-Z a-z 0-9 _ . -)`);
  }
  const target: DynamoDBTarget = { kind: 'dynamodb', table };
  for (const [name, value] of new URLSearchParams(match?.[2] ?? '')) {
    if (!OPTIONS.includes(name)) fail(`dynamodb: unknown option "${name}"; use ${OPTIONS.join(', ')}`);
    if (name === 'region') target.region = value;
    else if (name === 'endpoint') {
      if (!URL.canParse(value) || !/^https?:$/.test(new URL(value).protocol)) {
        fail(`dynamodb:?endpoint=${value}: use an http(s) URL, e.g. endpoint=http://127.0.0.1:8000`);
      }
      target.endpoint = value;
    } else {
      const ms = Number(value);
      if (!/^\d+$/.test(value) || !Number.isSafeInteger(ms))
        fail(`dynamodb:?clockSkewMs=${value}: use whole ms`);
      target.clockSkewMs = ms;
    }
  }
  return target;
}

interface Context {
  logger: GatewayLogger;
  importModule: ImportModule;
  connectTimeoutMs: number;
}

/**
 * A DynamoDBClient for the URL (credentials from the SDK's default chain: environment, shared
 * config, the instance or task role) and the store on it. SDK timeouts are short and retries few,
 * so a request the store already answered 503 is not retried for long behind its back.
 */
export async function openDynamoDB(
  target: DynamoDBTarget,
  context: Context,
): Promise<{ store: IdempotencyStore; migrate: () => Promise<void>; disconnect: () => Promise<void> }> {
  const { module } = await loadDriver(['@aws-sdk/client-dynamodb'], 'dynamodb://', context.importModule);
  const sdk = exportsOf<{ DynamoDBClient: new (config: DynamoDBClientConfig) => DynamoDBClient }>(module);
  if (typeof sdk.DynamoDBClient !== 'function') {
    throw new ConfigError('dynamodb:// needs @aws-sdk/client-dynamodb v3 (DynamoDBClient not found)');
  }
  const client = new sdk.DynamoDBClient({
    ...(target.region === undefined ? {} : { region: target.region }),
    ...(target.endpoint === undefined ? {} : { endpoint: target.endpoint }),
    maxAttempts: 2,
    requestHandler: { connectionTimeout: context.connectTimeoutMs, requestTimeout: 2_000 },
  });
  const { createTable, dynamodbStore } = await import('../stores/dynamodb.js');
  const onWarning = (message: string) => context.logger.warn({}, message);
  return {
    store: dynamodbStore({
      client,
      tableName: target.table,
      onWarning,
      ...(target.clockSkewMs === undefined ? {} : { clockSkewMs: target.clockSkewMs }),
    }),
    migrate: async () => {
      await createTable({ client, tableName: target.table, onWarning });
    },
    disconnect: async () => client.destroy(),
  };
}
