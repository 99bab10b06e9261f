import { dynamodbStore } from '../../src/stores/dynamodb.js';
import { dynamoClient } from './dynalite.js';
import { raceKeys } from './redis-postgres-race.js';

// One racing process on DynamoDB (dynalite). argv: <endpoint> <table> <keys> <seed>
const [endpoint = '', tableName = '', count = '0', seed = '0'] = process.argv.slice(2);
const client = dynamoClient(endpoint);
const store = dynamodbStore({ client, tableName, timeoutMs: 30_000 });
const result = await raceKeys(store, 'race', Number(count), Number(seed));
client.destroy();
process.stdout.write(`${JSON.stringify(result)}\n`);
