/** `npm run bench -- <name> [flags]`: runs one benchmark; without a name, lists them. */
const BENCHES: Record<string, { file: string; about: string }> = {
  engine: { file: './engine.js', about: 'fetch handler bare vs idemkit (memory, SQLite) over HTTP, ratios' },
  gateway: {
    file: './gateway.js',
    about: 'idemkit gateway (memory, SQLite, Redis) vs a bare undici proxy, unique keys and replays',
  },
  adapters: {
    file: './adapters.js',
    about: 'every framework adapter vs its bare framework (memory, Redis), unique keys and replays, paired',
  },
  stores: { file: './stores.js', about: 'claims per second per store' },
  dynamodb: {
    file: './dynamodb.js',
    about: 'claim + complete pairs per second, dynamodbStore vs the raw SDK sending the same commands',
  },
  core: { file: './core.js', about: 'the engine alone in process (begin/commit, replays), no HTTP' },
  instructions: {
    file: './instructions.js',
    about:
      'CPU instructions per request (valgrind callgrind): adapter vs bare framework, Redis server per pair',
  },
  rss: { file: './memory-rss.js', about: 'RSS while 1,000,000 unique keys pass through the memory store' },
};

const [name, ...argv] = process.argv.slice(2);
const bench = name === undefined ? undefined : BENCHES[name];
if (!bench) {
  if (name !== undefined) console.error(`unknown bench: ${name}\n`);
  console.log('usage: npm run bench -- <name> [flags]\n');
  for (const [n, b] of Object.entries(BENCHES)) console.log(`  ${n.padEnd(8)} ${b.about}`);
  process.exit(name === undefined ? 0 : 1);
}
// A variable specifier: a bench file that is not written yet is a message, not a type error.
const base = bench.file.slice(2, -3);
let mod: { run?: (argv: string[]) => unknown };
try {
  mod = (await import(bench.file)) as typeof mod;
} catch (error) {
  const missing =
    (error as { code?: string }).code === 'ERR_MODULE_NOT_FOUND' && String(error).includes(base);
  if (!missing) throw error;
  console.error(`bench "${name}" is not available yet: bench/${base}.ts does not exist`);
  process.exit(1);
}
if (typeof mod.run !== 'function') {
  console.error(`bench/${base}.ts exports no run()`);
  process.exit(1);
}
await mod.run(argv);
