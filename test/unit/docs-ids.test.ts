import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';

/*
 * The ids that code comments, test names, benchmarks and docs cite (F3, I9, S7, T51, T50-sec, …)
 * mean something only if a reader of the repo can look them up. docs/guarantees.md defines each
 * one, in a heading (`#### F1. …`) or in the first cell of a table row (`| T1 | …`); this test
 * fails on any cited id it does not define, naming the files that cite it.
 */

const ROOT = resolve(import.meta.dirname, '..', '..');
const GUARANTEES = join(ROOT, 'docs', 'guarantees.md');
const SCANNED = ['src', 'test', 'bench', 'examples', 'docs', 'README.md'];
const SKIP = new Set(['node_modules', 'dist', 'fixtures', '.git']);
const TEXT = /\.(ts|js|mjs|cjs|md|json|sql)$/;
const SELF = resolve(import.meta.filename);

/**
 * An id: a family letter (F failure mode, I invariant, S threat, T test scenario), one or two
 * digits, optionally `-sec`. Not after `%` (a percent-escape such as `%F3`) or a word character.
 * Labels such as `T4-off` cite T4.
 */
const ID = /(?<![%\w])([FIST])(\d{1,2})(-sec)?\b/g;
/** A range such as `T1–T8` or `T35-37` cites every id in it. */
const RANGE = /(?<![%\w])([FIST])(\d{1,2})\s*[–-]\s*\1?(\d{1,2})\b/g;

function sourceFiles(path: string): string[] {
  if (!statSync(path, { throwIfNoEntry: false })) return [];
  if (!statSync(path).isDirectory()) return TEXT.test(path) ? [path] : [];
  return readdirSync(path)
    .filter((name) => !SKIP.has(name))
    .flatMap((name) => sourceFiles(join(path, name)));
}

/** Every id a text cites, ranges expanded. */
function citedIds(text: string): Set<string> {
  const ids = new Set<string>();
  for (const m of text.matchAll(ID)) ids.add(`${m[1]}${Number(m[2])}${m[3] ?? ''}`);
  for (const m of text.matchAll(RANGE)) {
    const [from, to] = [Number(m[2]), Number(m[3])];
    // A backwards or huge span is no range of ids (a date, a version).
    if (to <= from || to - from > 20) continue;
    for (let n = from; n <= to; n++) ids.add(`${m[1]}${n}`);
  }
  return ids;
}

/** The ids a guarantees page defines: in a heading's leading id, or a table row's first cell. */
function definedIds(markdown: string): Map<string, number> {
  const prose = markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
  const count = new Map<string, number>();
  const define = (id: string) => count.set(id, (count.get(id) ?? 0) + 1);
  for (const m of prose.matchAll(/^#{1,6}\s+([FIST]\d{1,2}(?:-sec)?)\.\s/gm)) define(m[1] as string);
  for (const m of prose.matchAll(/^\|([^|\n]+)\|/gm)) {
    const cell = (m[1] as string).trim();
    // Only a cell that is nothing but ids ("T50-sec, T50") defines them; prose cells cite.
    if (!/^[FIST]\d{1,2}(-sec)?(\s*,\s*[FIST]\d{1,2}(-sec)?)*$/.test(cell)) continue;
    for (const id of cell.split(',')) define(id.trim());
  }
  return count;
}

/** Cited ids that `defined` lacks, each with the files citing it. */
function undefinedIds(
  citations: ReadonlyMap<string, ReadonlySet<string>>,
  defined: ReadonlyMap<string, number>,
): Map<string, string[]> {
  const missing = new Map<string, string[]>();
  for (const [file, ids] of citations) {
    for (const id of ids) {
      if (defined.has(id)) continue;
      missing.set(id, [...(missing.get(id) ?? []), file]);
    }
  }
  return missing;
}

function repoCitations(): Map<string, Set<string>> {
  const citations = new Map<string, Set<string>>();
  for (const entry of SCANNED) {
    for (const file of sourceFiles(join(ROOT, entry))) {
      if (resolve(file) === SELF) continue;
      const ids = citedIds(readFileSync(file, 'utf8'));
      if (ids.size > 0) citations.set(relative(ROOT, file), ids);
    }
  }
  return citations;
}

describe('docs ids', () => {
  it('every id cited in src, test, bench, examples and the docs is defined in docs/guarantees.md', () => {
    const citations = repoCitations();
    assert.ok(citations.size > 0, 'found citations to check');
    const defined = definedIds(readFileSync(GUARANTEES, 'utf8'));
    const missing = undefinedIds(citations, defined);
    assert.deepEqual(
      Object.fromEntries(missing),
      {},
      'cited but not defined in docs/guarantees.md (define them there, or drop the citation)',
    );
  });

  it('docs/guarantees.md defines each id once', () => {
    const defined = definedIds(readFileSync(GUARANTEES, 'utf8'));
    assert.ok(defined.has('F1') && defined.has('I9') && defined.has('S12') && defined.has('T50-sec'));
    const twice = [...defined].filter(([, n]) => n > 1).map(([id]) => id);
    assert.deepEqual(twice, []);
  });

  it('the checker reports what it must (negative controls)', () => {
    const defined = definedIds(
      [
        '#### F3. The store is unavailable',
        '| id | name |',
        '|---|---|',
        '| T1 | first execution |',
        '| T50-sec, T50 | stored errors |',
        '| prose citing T77 | is no definition |',
        '```',
        '| T88 | inside a code block |',
        '```',
      ].join('\n'),
    );
    assert.deepEqual([...defined.keys()].sort(), ['F3', 'T1', 'T50', 'T50-sec']);

    const cited = citedIds(
      "see F3 and T99; op: 'T1-off'; T50-sec; T2–T4; caf%C3%A9 %F3 0xF3 UTF8 'Bearer A1' HTTP2 T123",
    );
    assert.deepEqual([...cited].sort(), ['F3', 'T1', 'T2', 'T3', 'T4', 'T50-sec', 'T99']);

    const missing = undefinedIds(new Map([['src/x.ts', cited]]), defined);
    assert.deepEqual(Object.fromEntries(missing), {
      T2: ['src/x.ts'],
      T3: ['src/x.ts'],
      T4: ['src/x.ts'],
      T99: ['src/x.ts'],
    });
  });
});
