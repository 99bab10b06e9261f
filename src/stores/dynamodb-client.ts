import type {
  CreateTableCommand,
  DeleteItemCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import { StoreMisconfiguredError, StoreUnavailableError } from '../core/errors.js';

/**
 * The part of an `@aws-sdk/client-dynamodb` `DynamoDBClient` the store uses: `send` of these
 * commands. A `DynamoDBClient` fits as it is; so does a wrapper (tracing, a test double) with
 * this shape.
 */
export interface DynamoDBClientLike {
  send(
    command:
      | PutItemCommand
      | UpdateItemCommand
      | GetItemCommand
      | DeleteItemCommand
      | DescribeTableCommand
      | DescribeTimeToLiveCommand
      | CreateTableCommand
      | UpdateTimeToLiveCommand,
  ): Promise<unknown>;
}

export function errorName(error: unknown): string {
  return (error as { name?: unknown } | null)?.name === undefined
    ? ''
    : String((error as { name: unknown }).name);
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The SDK's answer to a failed condition; with ReturnValuesOnConditionCheckFailure it has `Item`. */
export function isConditionFailed(error: unknown): boolean {
  return errorName(error) === 'ConditionalCheckFailedException';
}

/** A missing table is a deployment error (503 `store-misconfigured`), not an outage. */
export function storeError(operation: string, table: string, error: unknown): Error {
  if (error instanceof StoreUnavailableError || error instanceof StoreMisconfiguredError) return error;
  if (errorName(error) === 'ResourceNotFoundException') {
    return new StoreMisconfiguredError(
      `idemkit dynamodb: table ${table} does not exist; create it with createTable({ client, tableName }) or idemkit migrate --store dynamodb://${table}`,
      { cause: error },
    );
  }
  return new StoreUnavailableError(`dynamodb ${operation} failed: ${messageOf(error)}`, { cause: error });
}
