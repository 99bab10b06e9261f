import type { Command } from 'commander';
import { formatDuration, parseDuration } from '../gateway/units.js';
import { usage } from './common.js';

interface DemoFlags {
  operations: string;
  concurrency: string;
  faultRate: string;
  duration: string;
  timeout: string;
  json?: boolean;
}

export function defineDemo(program: Command): void {
  program
    .command('demo')
    .description('See duplicate charges happen without idemkit, and not with it (about 10 s, no setup).')
    .option('--operations <n>', 'charges per side', '500')
    .option('--concurrency <n>', 'customers charging at once, per side', '8')
    .option('--fault-rate <p>', 'share of responses lost after the charge was made, 0–0.9', '0.2')
    .option('--duration <d>', 'stop starting new operations after this long', '40s')
    .option('--timeout <d>', "the client's deadline per attempt", '1s')
    .option('--json', 'print the result as JSON instead of the table')
    .addHelpText(
      'after',
      `
A sample payments API, the idemkit gateway in front of it (SQLite, a temporary file under .idemkit/),
and a faulty network in front of both that loses responses after the card was charged. Customers
retry with the same Idempotency-Key, directly and through the gateway. Exit code 1 if any charge
was duplicated through the gateway.`,
    )
    .action(runDemoCommand);
}

async function runDemoCommand(flags: DemoFlags): Promise<void> {
  const operations = integer(flags.operations, '--operations', 1, 1_000_000);
  const concurrency = integer(flags.concurrency, '--concurrency', 1, 1_000);
  const faultRate = Number(flags.faultRate);
  if (!/^\d*\.?\d+$/.test(flags.faultRate) || faultRate > 0.9)
    usage(`--fault-rate "${flags.faultRate}": use a share from 0 to 0.9, e.g. 0.2`);
  const durationMs = parseDuration(flags.duration, '--duration');
  const timeoutMs = parseDuration(flags.timeout, '--timeout');
  if (durationMs < 1 || timeoutMs < 1) usage('--duration and --timeout must be longer than 0');

  const [{ runDemo }, { formatProgress, formatTable, formatVerdict }] = await Promise.all([
    import('./demo/run.js'),
    import('./demo/report.js'),
  ]);
  const out = (line: string) => flags.json || process.stdout.write(`${line}\n`);
  out(
    `idemkit demo: ${operations} charges per side, ${concurrency} at once, ${Math.round(faultRate * 100)}% of responses lost after the charge (drop, hang or cut), ${formatDuration(timeoutMs)} client timeout\n`,
  );
  const aborter = new AbortController();
  const interrupt = () => {
    out('\ninterrupted: finishing the operations in flight, then cleaning up');
    aborter.abort();
  };
  process.once('SIGINT', interrupt);
  try {
    const result = await runDemo({
      operations,
      concurrency,
      faultRate,
      durationMs,
      timeoutMs,
      signal: aborter.signal,
      onProgress: (progress) => out(formatProgress(progress)),
    });
    if (flags.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else
      out(
        `\n${formatTable(result)}\n\n${formatVerdict(result)}\n\nFinished in ${formatDuration(result.elapsedMs)}. Put it in front of your API: npx idemkit gateway --upstream http://127.0.0.1:8080`,
      );
    if (result.gateway.duplicates > 0) process.exitCode = 1;
  } finally {
    process.removeListener('SIGINT', interrupt);
  }
}

function integer(text: string, flag: string, min: number, max: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max)
    usage(`${flag} "${text}": use a whole number from ${min} to ${max}`);
  return value;
}
