import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after } from 'node:test';

/*
 * Counts for the report card's "Bad inputs rejected" section. When IDEMKIT_REPORT_DIR is set,
 * each fuzz test file writes, once its tests have run (passed or not), the file
 * `$IDEMKIT_REPORT_DIR/bad-inputs-<suite>.json`:
 *
 *   {
 *     "format": "idemkit-bad-inputs/1",
 *     "suite": "key-fuzz",                  // which test file: key-fuzz, header-fuzz, flood, oversized
 *     "seed": 1263135500,                   // the fast-check seed (FUZZ_SEED replays it); null if none
 *     "categories": {
 *       "malformed-keys": {                 // one entry per kind of bad input
 *         "what": "Idempotency-Key values the rules refuse, in-process and over sockets",
 *         "tried": 5210,                    // cases sent
 *         "correct": 5210                   // cases answered as the rules demand
 *       }
 *     }
 *   }
 *
 * "tried" counts every case a test sent, including fast-check's shrinking runs after a failure,
 * so a failed run shows correct < tried; the card reports correct / tried (target 100%).
 * Categories: malformed-keys, valid-keys (key-fuzz); odd-headers, cross-scope-attempts
 * (header-fuzz); flood-requests, other-principals-requests (flood); oversized-bodies,
 * oversized-answers (oversized).
 */

export interface BadInputCount {
  what: string;
  tried: number;
  correct: number;
}

export interface BadInputReport {
  /** Adds one case of `category`; `correct` when it got the answer the rules demand. */
  count(category: string, correct: boolean): void;
  /** The counts so far (for assertions in the tests themselves). */
  get(category: string): BadInputCount;
}

/** A report for one test file; written in its `after` hook when IDEMKIT_REPORT_DIR is set. */
export function badInputReport(
  suite: string,
  seed: number | null,
  categories: Record<string, string>,
): BadInputReport {
  const counts = new Map<string, BadInputCount>(
    Object.entries(categories).map(([name, what]) => [name, { what, tried: 0, correct: 0 }]),
  );
  const entry = (category: string): BadInputCount => {
    const found = counts.get(category);
    if (!found) throw new Error(`bad-input category "${category}" is not declared for ${suite}`);
    return found;
  };
  after(() => {
    const dir = process.env.IDEMKIT_REPORT_DIR;
    if (!dir) return;
    mkdirSync(dir, { recursive: true });
    const body = { format: 'idemkit-bad-inputs/1', suite, seed, categories: Object.fromEntries(counts) };
    writeFileSync(join(dir, `bad-inputs-${suite}.json`), `${JSON.stringify(body, null, 2)}\n`);
  });
  return {
    count(category, correct) {
      const found = entry(category);
      found.tried++;
      if (correct) found.correct++;
    },
    get: (category) => ({ ...entry(category) }),
  };
}
