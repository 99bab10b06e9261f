import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/**
 * Self time per function of the main threads profiled under `dir/<prefix>*` (`node --cpu-prof`
 * names profiles `CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile`; thread 0 is the main
 * thread): the top `limit` functions, and the self time of each idemkit source file, as shares of
 * all sampled time (idle included, printed separately).
 */
export function summarizeProfiles(dir: string, prefix: string, limit = 15): string[] {
  const self = new Map<string, number>();
  const files = new Map<string, number>();
  let total = 0;
  let idle = 0;
  const mainThreads = readdirSync(dir)
    .filter((d) => d.startsWith(prefix))
    .flatMap((d) =>
      readdirSync(join(dir, d))
        .filter((f) => /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/.test(f))
        .map((f) => join(dir, d, f)),
    );
  for (const file of mainThreads) {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
    profile.samples.forEach((id, i) => {
      const us = profile.timeDeltas[i] ?? 0;
      const frame = byId.get(id);
      if (!frame) return;
      total += us;
      if (frame.functionName === '(idle)') {
        idle += us;
        return;
      }
      const where = shortUrl(frame.url);
      const label = `${frame.functionName || '(anonymous)'} ${where ? `${where}:${frame.lineNumber + 1}` : ''}`;
      self.set(label, (self.get(label) ?? 0) + us);
      if (where.startsWith('src/')) files.set(where, (files.get(where) ?? 0) + us);
    });
  }
  if (total === 0) return ['  (no profile samples)'];
  const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
  const lines = [`  idle ${pct(idle)} of ${(total / 1e6).toFixed(1)} s sampled; top self time:`];
  for (const [label, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, limit)) {
    lines.push(`  ${pct(us)}  ${label}`);
  }
  lines.push('  self time in idemkit source files:');
  for (const [file, us] of [...files].sort((a, b) => b[1] - a[1])) lines.push(`  ${pct(us)}  ${file}`);
  return lines;
}

/** A tree compiled by `compileSources()` (build.ts): its files are counted as their sources. */
const COMPILED = /^.*\/node_modules\/\.cache\/idemkit-bench-[^/]+\/js\//;

function shortUrl(url: string): string {
  if (!url) return '';
  if (url.startsWith('node:')) return url;
  const path = url.replace(/^file:\/\//, '');
  if (COMPILED.test(path)) return path.replace(COMPILED, 'src/');
  const rel = relative(process.cwd(), path);
  return rel.startsWith('..') ? path : rel;
}
