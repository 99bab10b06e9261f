import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Compiles an idemkit source tree with the package's own build settings (tsc, as `dist/` is
 * built), so the server runs what users run: tsx's transform differs (its `__name` wrappers
 * alone cost a few µs per request in closure-heavy code). The output goes under
 * `node_modules/.cache/`, so bare imports (`better-sqlite3`) resolve from the repo. Type errors
 * in a tree being edited do not stop the emit. The tree is copied next to a `package.json` of type
 * module first: under `NodeNext`, tsc emits CommonJS for sources with no such file above them (a
 * bare copy of `src/` somewhere else would not run). Returns the directory holding the `.js` files.
 */
export function compileSources(srcDir: string): { dir: string; remove(): void } {
  const cache = join(REPO, 'node_modules', '.cache');
  mkdirSync(cache, { recursive: true });
  const root = mkdtempSync(join(cache, 'idemkit-bench-'));
  const out = join(root, 'js');
  const sources = join(root, 'src');
  cpSync(srcDir, sources, { recursive: true });
  writeFileSync(join(root, 'package.json'), '{ "type": "module" }\n');
  const tsconfig = join(root, 'tsconfig.json');
  writeFileSync(
    tsconfig,
    JSON.stringify({
      extends: join(REPO, 'tsconfig.build.json'),
      compilerOptions: {
        rootDir: sources,
        outDir: out,
        declaration: false,
        sourceMap: false,
        noEmitOnError: false,
        incremental: false,
      },
      include: [sources],
    }),
  );
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const result = spawnSync(process.execPath, [tsc, '-p', tsconfig], { encoding: 'utf8', timeout: 120_000 });
  const remove = () => rmSync(root, { recursive: true, force: true });
  if (!existsSync(join(out, 'core', 'engine.js'))) {
    remove();
    throw new Error(`tsc emitted nothing for ${srcDir}:\n${result.stdout}${result.stderr}`);
  }
  writeFileSync(join(out, 'package.json'), '{ "type": "module" }\n');
  return { dir: out, remove };
}
