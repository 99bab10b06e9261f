import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';

/*
 * The docs stand alone: every relative link in a Markdown file of the repo points at a file (or
 * folder) inside the repo that exists, and a `#fragment` into a Markdown file names one of its
 * headings. Links to public URLs (http, https, mailto) are not followed here.
 */

const ROOT = resolve(import.meta.dirname, '..', '..');
const SKIP = new Set(['node_modules', 'dist', '.git', 'coverage']);

function markdownFiles(dir: string = ROOT): string[] {
  const found: string[] = [];
  for (const name of readdirSync(dir)) {
    if (SKIP.has(name)) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...markdownFiles(path));
    else if (name.endsWith('.md')) found.push(path);
  }
  return found;
}

/** `[text](target)` and `[label]: target` links, outside fenced code blocks and inline code. */
function linksOf(markdown: string): string[] {
  const prose = markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').replace(/`[^`\n]*`/g, '');
  const links: string[] = [];
  for (const m of prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) links.push(m[1] as string);
  for (const m of prose.matchAll(/^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$/gm))
    links.push(m[1] as string);
  return links;
}

/** GitHub's heading anchors: lowercase, punctuation dropped, spaces as hyphens. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const prose = markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
  for (const m of prose.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const slug = (m[1] as string)
      .toLowerCase()
      .replace(/<[^>]+>/g, '')
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    let candidate = slug;
    for (let n = 1; anchors.has(candidate); n++) candidate = `${slug}-${n}`;
    anchors.add(candidate);
  }
  return anchors;
}

/** What is wrong with one link from `file`, or undefined. */
function brokenLink(file: string, target: string, root: string = ROOT): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) {
    return /^(https?|mailto):/i.test(target)
      ? undefined
      : `${target}: only http(s) and mailto links leave the repo`;
  }
  const [pathPart = '', fragment] = target.split('#', 2);
  const path = pathPart === '' ? file : resolve(dirname(file), decodeURIComponent(pathPart));
  const inside = relative(root, path);
  if (inside.startsWith('..') || resolve(root, inside) !== path) return `${target}: leaves the repo`;
  if (!existsSync(path)) return `${target}: no such file`;
  if (
    fragment &&
    path.endsWith('.md') &&
    !anchorsOf(readFileSync(path, 'utf8')).has(fragment.toLowerCase())
  ) {
    return `${target}: no heading #${fragment} in ${relative(root, path)}`;
  }
  return undefined;
}

describe('docs links', () => {
  it('every relative link in the repo’s Markdown resolves inside the repo', () => {
    const files = markdownFiles();
    assert.ok(
      files.some((f) => f.endsWith('README.md')),
      'found the README',
    );
    const broken: string[] = [];
    for (const file of files) {
      for (const target of linksOf(readFileSync(file, 'utf8'))) {
        const problem = brokenLink(file, target);
        if (problem) broken.push(`${relative(ROOT, file)}: ${problem}`);
      }
    }
    assert.deepEqual(broken, []);
  });

  it('the checker catches what it must (negative controls)', () => {
    const readme = join(ROOT, 'README.md');
    assert.match(brokenLink(readme, '../shared/design/architecture.md') ?? '', /leaves the repo/);
    assert.match(brokenLink(readme, 'docs/no-such-page.md') ?? '', /no such file/);
    assert.match(brokenLink(readme, 'docs/security.md#no-such-heading') ?? '', /no heading/);
    assert.match(brokenLink(readme, 'file:///etc/passwd') ?? '', /only http/);
    assert.equal(brokenLink(readme, 'docs/security.md'), undefined);
    assert.equal(brokenLink(readme, 'https://example.com/x'), undefined);
    assert.deepEqual(linksOf('see [a](b.md) and `[c](d.md)`\n```\n[e](f.md)\n```\n[g]: h.md'), [
      'b.md',
      'h.md',
    ]);
    assert.ok(anchorsOf('## Quick start: 2 commands\n').has('quick-start-2-commands'));
  });
});
