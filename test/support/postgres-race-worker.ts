import { postgresStore } from '../../src/stores/postgres.js';
import { postgresPool } from './postgres-service.js';
import { raceKeys } from './redis-postgres-race.js';

// One racing process on PostgreSQL. argv: <table> <run id> <keys> <seed>
const [table = '', run = '', count = '0', seed = '0'] = process.argv.slice(2);
const pool = await postgresPool({ max: 10 });
const result = await raceKeys(postgresStore({ pool, table }), run, Number(count), Number(seed));
await pool.end();
process.stdout.write(`${JSON.stringify(result)}\n`);
