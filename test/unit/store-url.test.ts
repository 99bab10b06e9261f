import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError } from '../../src/gateway/config-error.js';
import { openStore, parseStoreUrl, redactUrl } from '../../src/gateway/store-url.js';

const dir = mkdtempSync(join(tmpdir(), 'idemkit-store-url-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const SECRET = 's'.repeat(32);
const notInstalled = (name: string) =>
  Object.assign(new Error(`Cannot find package '${name}' imported from /app/x.js`), {
    code: 'ERR_MODULE_NOT_FOUND',
  });
/** A machine where no driver is installed. */
const nothingInstalled = async (name: string) => {
  throw notInstalled(name);
};
const claim = { fingerprint: 'v1:f', token: 't', leaseMs: 10_000, retentionMs: 60_000 };

describe('parseStoreUrl', () => {
  it('reads every supported form', () => {
    assert.deepEqual(parseStoreUrl('sqlite:'), { kind: 'sqlite', path: './.idemkit/idemkit.db' });
    assert.deepEqual(parseStoreUrl('sqlite:./a/b.db'), { kind: 'sqlite', path: './a/b.db' });
    assert.deepEqual(parseStoreUrl('sqlite:/abs/b.db'), { kind: 'sqlite', path: '/abs/b.db' });
    assert.deepEqual(parseStoreUrl('sqlite:///abs/b.db'), { kind: 'sqlite', path: '/abs/b.db' });
    assert.deepEqual(parseStoreUrl('sqlite://./b.db'), { kind: 'sqlite', path: './b.db' });
    assert.deepEqual(parseStoreUrl('memory:'), { kind: 'memory' });
    assert.deepEqual(parseStoreUrl('postgresql://u@h/db'), { kind: 'postgres', url: 'postgresql://u@h/db' });
    assert.deepEqual(parseStoreUrl('rediss://h:6380?client=ioredis'), {
      kind: 'redis',
      url: 'rediss://h:6380',
      client: 'ioredis',
    });
    assert.deepEqual(parseStoreUrl('redis-cluster://u:p%40ss@a:7000,b:7001?client=node-redis'), {
      kind: 'redis-cluster',
      nodes: [
        { host: 'a', port: 7000 },
        { host: 'b', port: 7001 },
      ],
      auth: { username: 'u', password: 'p@ss' },
      client: 'node-redis',
    });
  });

  it('names the source of a bad URL and lists the supported ones', () => {
    assert.throws(() => parseStoreUrl('dynamo://t', 'IDEMKIT_STORE'), {
      name: 'ConfigError',
      message:
        /^IDEMKIT_STORE: "dynamo:\/\/t" is not a store URL; use sqlite:\.\/path\.db, memory:, postgres:/,
    });
    assert.throws(() => parseStoreUrl('./x.db'), /is not a store URL/);
    assert.throws(
      () => parseStoreUrl('memory:big'),
      /memory: takes only options, e\.g\. memory:\?maxBytes=64MiB/,
    );
    assert.throws(() => parseStoreUrl('redis-cluster://'), /not a cluster URL; e\.g\. redis-cluster:\/\/127/);
    assert.throws(() => parseStoreUrl('redis-cluster://a:99999'), /cluster node "a:99999" must be host:port/);
  });

  it('reads the memory store limits from the query', () => {
    assert.deepEqual(parseStoreUrl('memory:?maxEntries=5000&maxBytes=64MiB&maxEntriesPerPrincipal=100'), {
      kind: 'memory',
      maxEntries: 5_000,
      maxBytes: 67_108_864,
      maxEntriesPerPrincipal: 100,
    });
    assert.deepEqual(parseStoreUrl('memory://?maxBytes=1gb'), { kind: 'memory', maxBytes: 1_073_741_824 });
    assert.deepEqual(parseStoreUrl('memory:?maxBytes=4096'), { kind: 'memory', maxBytes: 4_096 });
    assert.deepEqual(parseStoreUrl('memory:?'), { kind: 'memory' });
  });

  it('names the bad memory option and what it takes', () => {
    const cases: [string, RegExp][] = [
      [
        'memory:?maxEntries=0',
        /^IDEMKIT_STORE: memory:\?maxEntries=0: use a positive whole number, e\.g\. maxEntries=100000$/,
      ],
      ['memory:?maxEntries=1e5', /maxEntries=1e5: use a positive whole number/],
      ['memory:?maxEntriesPerPrincipal=-3', /maxEntriesPerPrincipal=-3: use a positive whole number/],
      ['memory:?maxEntries=', /maxEntries=: use a positive whole number/],
      [
        'memory:?maxBytes=lots',
        /IDEMKIT_STORE: memory:\?maxBytes: "lots" is not a size; use bytes or a unit/,
      ],
      ['memory:?maxBytes=0', /maxBytes=0: use a positive size, e\.g\. maxBytes=64MiB/],
      ['memory:?maxItems=5', /unknown option "maxItems"; use maxEntries, maxBytes or maxEntriesPerPrincipal/],
      ['memory:?maxentries=5', /unknown option "maxentries"/],
      ['memory:?maxBytes=1mb&maxBytes=2mb', /maxBytes is given twice/],
    ];
    for (const [url, pattern] of cases) {
      assert.throws(
        () => parseStoreUrl(url, 'IDEMKIT_STORE'),
        (error: Error) => {
          assert.ok(error instanceof ConfigError, url);
          assert.match(error.message, pattern, url);
          return true;
        },
      );
    }
  });

  it('redacts passwords for logs', () => {
    assert.equal(redactUrl('postgres://app:hunter2@db:5432/app'), 'postgres://app:***@db:5432/app');
    assert.equal(redactUrl('redis://:hunter2@h'), 'redis://:***@h');
    assert.equal(redactUrl('redis://h:6379'), 'redis://h:6379');
  });
});

describe('openStore', () => {
  it('sqlite: creates the missing folders, opens the file, keeps its own secret', async () => {
    const path = join(dir, 'nested', 'deeper', 'x.db');

    const opened = await openStore(`sqlite:${path}`);
    const result = await opened.store.claim({ key: 'k'.repeat(64), ...claim });
    await opened.close();
    await opened.close(); // twice is safe

    assert.equal(result.outcome, 'acquired');
    assert.ok(existsSync(path));
    assert.equal(opened.secret, undefined);
    assert.equal(opened.description, `sqlite:${path}`);
    assert.equal(opened.migrate, undefined);
  });

  it('sqlite: a path it cannot open fails at startup, not on the first request', async () => {
    await assert.rejects(openStore(`sqlite:${dir}`), /sqlite cannot open/);
  });

  it('memory: works and warns through the logger that it is single-process', async () => {
    const warnings: string[] = [];
    const logger = {
      info() {},
      debug() {},
      error() {},
      warn: (_: object, m?: string) => warnings.push(m ?? ''),
    };

    const opened = await openStore('memory:', { logger });
    await opened.store.claim({ key: 'k'.repeat(64), ...claim });
    await opened.close();

    assert.match(warnings.join('\n'), /this process only/);
  });

  it('memory: applies the limits from its query', async () => {
    const opened = await openStore('memory:?maxEntries=1');
    await opened.store.claim({ key: 'a'.repeat(64), ...claim });

    await assert.rejects(opened.store.claim({ key: 'b'.repeat(64), ...claim }), {
      code: 'store-unavailable',
      message: /memory store is full \(1 live records\)/,
    });
    await opened.close();
  });

  it('postgres and redis refuse to open without IDEMKIT_SECRET', async () => {
    for (const url of ['postgres://u@h/db', 'redis://h', 'redis-cluster://a:1,b:2']) {
      await assert.rejects(openStore(url), (error: Error) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, /needs the same fingerprint secret: set IDEMKIT_SECRET .*openssl rand/);
        return true;
      });
    }
  });

  it('names the package to install when a driver is missing', async () => {
    const cases: [string, RegExp][] = [
      ['sqlite:./x.db', /the sqlite: store needs the better-sqlite3 package: npm install better-sqlite3$/],
      ['postgres://u@h/db', /postgres:\/\/ needs the pg package: npm install pg$/],
      [
        'redis://h',
        /^redis:\/\/ needs the @redis\/client package: npm install @redis\/client \(or redis, or ioredis\)$/,
      ],
      ['redis://h?client=ioredis', /npm install ioredis$/],
      [
        'redis-cluster://a:1?client=node-redis',
        /redis-cluster:\/\/ .*npm install @redis\/client \(or redis\)$/,
      ],
    ];
    for (const [url, pattern] of cases) {
      await assert.rejects(
        openStore(url, { secret: SECRET, importModule: nothingInstalled }),
        (error: Error) => {
          assert.ok(error instanceof ConfigError, url);
          assert.match(error.message, pattern, url);
          return true;
        },
      );
    }
  });

  it('a driver that is installed but broken is reported as such, not as missing', async () => {
    const broken = async (name: string) => {
      throw name === 'pg' ? notInstalled('pg-types') : notInstalled(name);
    };

    await assert.rejects(openStore('postgres://u@h/db', { secret: SECRET, importModule: broken }), {
      name: 'ConfigError',
      message: /postgres:\/\/ needs pg, which failed to load: Cannot find package 'pg-types'/,
    });
  });

  it('admin commands may open a shared store without the secret', async () => {
    // requireSecret: false gets past the secret check; the missing driver proves it tried to open.
    await assert.rejects(
      openStore('postgres://u@h/db', { requireSecret: false, importModule: nothingInstalled }),
      /npm install pg/,
    );
  });

  it('returns the given secret for the engine', async () => {
    const opened = await openStore('memory:', { secret: randomBytes(24).toString('base64') });
    await opened.close();

    assert.equal(typeof opened.secret, 'string');
  });
});
