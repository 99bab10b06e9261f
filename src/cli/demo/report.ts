import type { DemoProgress, DemoResult, SideResult } from './run.js';

const ms = (value: number) => `${Math.round(value)} ms`;

type Row = [label: string, direct: string, gateway: string];

/** The side-by-side table the demo ends with. */
export function formatTable(result: DemoResult): string {
  const { direct, gateway } = result;
  const both = (pick: (side: SideResult) => string | number): [string, string] => [
    String(pick(direct)),
    String(pick(gateway)),
  ];
  const rows: Row[] = [
    ['operations (charges asked for)', ...both((s) => s.operations)],
    ['requests sent', ...both((s) => s.requests)],
    ['retries', ...both((s) => s.retries)],
    ['responses lost (injected faults)', ...both((s) => s.faults)],
    ['charges made', ...both((s) => s.charges)],
    ['DUPLICATE CHARGES', ...both((s) => s.duplicates)],
    ['customers charged twice or more', ...both((s) => s.chargedTwice)],
    ['replays received (Idempotent-Replayed)', '-', String(gateway.replays)],
    ['operations failed after all retries', ...both((s) => s.failed)],
    ['latency per request p50', ...both((s) => ms(s.requestP50Ms))],
    ['latency per request p99', ...both((s) => ms(s.requestP99Ms))],
    ['latency per operation p50 (with retries)', ...both((s) => ms(s.operationP50Ms))],
    ['latency per operation p99 (with retries)', ...both((s) => ms(s.operationP99Ms))],
  ];
  const header: Row = ['', 'without idemkit', 'with idemkit gateway'];
  const widths = [0, 1, 2].map((i) => Math.max(...[header, ...rows].map((row) => (row[i] as string).length)));
  const line = (row: Row) =>
    `  ${row[0].padEnd(widths[0] as number)}   ${row[1].padStart(widths[1] as number)}   ${row[2].padStart(widths[2] as number)}`;
  const rule = `  ${'─'.repeat((widths[0] as number) + (widths[1] as number) + (widths[2] as number) + 6)}`;
  return [line(header), rule, ...rows.map(line), rule].join('\n');
}

/** Two sentences under the table: what happened, in words. */
export function formatVerdict(result: DemoResult): string {
  const { direct, gateway } = result;
  const without =
    direct.duplicates > 0
      ? `Without idemkit, ${direct.chargedTwice} of ${direct.operations} customers were charged more than once (${direct.duplicates} extra charges): their retries were charged again.`
      : 'Without idemkit there were no duplicates this time (no lost response was retried); raise --fault-rate.';
  const withIt =
    gateway.duplicates === 0
      ? `Through the gateway: 0 duplicates; ${gateway.replays} retries got the original response back instead of a second charge.`
      : `Through the gateway: ${gateway.duplicates} DUPLICATES. This is a bug in idemkit; please report it with this output.`;
  return `${without}\n${withIt}`;
}

export function formatProgress(progress: DemoProgress): string {
  const seconds = (progress.elapsedMs / 1_000).toFixed(1).padStart(5);
  const side = (name: 'direct' | 'gateway') => {
    const s = progress.sides[name];
    return `${String(s.done).padStart(String(progress.operations).length)}/${progress.operations} done, ${s.faults} lost, ${s.duplicates} duplicate${s.duplicates === 1 ? '' : 's'}`;
  };
  return `${seconds}s  without: ${side('direct')}  │  gateway: ${side('gateway')}`;
}
