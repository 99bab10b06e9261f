import type { Command } from 'commander';
import { storeOption, storeUrlFrom, usage, withStore } from './common.js';
import { addSelectorOptions, hasSelector, type SelectorFlags, storeKeyOf } from './record-selector.js';

interface PurgeFlags extends SelectorFlags {
  store?: string;
  expired?: boolean;
}

const BATCH = 1_000;
/** A sweep that keeps finding full batches for this long is stopped; run purge again. */
const MAX_SWEEP_MS = 10 * 60_000;

export function definePurge(program: Command): void {
  const command = program
    .command('purge')
    .description('Delete every expired record (--expired), or one record whatever its state.')
    .addOption(storeOption())
    .option('--expired', 'delete records past their retention, in batches, until none is left');
  addSelectorOptions(command)
    .addHelpText(
      'after',
      `
Examples:
  idemkit purge --expired --store postgres://…
  idemkit purge --principal-hash <hash> --path /charges --key 8e0f…   (the next request with that key runs again)`,
    )
    .action(runPurge);
}

async function runPurge(flags: PurgeFlags): Promise<void> {
  if (flags.expired && hasSelector(flags))
    usage('--expired deletes every expired record; leave out --path, --key and the other selectors');
  if (!flags.expired && !hasSelector(flags))
    usage('pass --expired, or name one record with --path and --key (or --store-key)');
  const key = flags.expired ? undefined : storeKeyOf(flags);
  await withStore(
    storeUrlFrom(flags.store),
    key === undefined ? 'purge expired records' : 'delete the record',
    async (opened) => {
      if (key === undefined) {
        const started = Date.now();
        let total = 0;
        for (let batch = BATCH; batch === BATCH && Date.now() - started < MAX_SWEEP_MS; ) {
          batch = await opened.store.sweep(BATCH);
          total += batch;
        }
        process.stdout.write(
          `purged ${total} expired record${total === 1 ? '' : 's'} from ${opened.description}\n`,
        );
      } else if (await opened.store.delete(key)) {
        process.stdout.write(`deleted record ${key}; the next request with this key runs again\n`);
      } else {
        process.stderr.write(`no record ${key} in ${opened.description}\n`);
        process.exitCode = 1;
      }
    },
  );
}
