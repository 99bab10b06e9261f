import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { sqliteStore } from '../../src/stores/sqlite.js';
import type { StoreHandle } from '../../src/testing/index.js';

/** A fresh SQLite file store per call, in a temp folder removed when the test file ends. */
export function tempSqliteStores(prefix = 'idemkit-http-'): () => StoreHandle {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let files = 0;
  return () => {
    const store = sqliteStore({ path: join(dir, `store-${++files}.db`) });
    return { store, cleanup: () => store.close() };
  };
}
