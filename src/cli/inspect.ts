import type { Command } from 'commander';
import { formatDuration } from '../gateway/units.js';
import type { StoredRecord } from '../stores/types.js';
import { storeOption, storeUrlFrom, withStore } from './common.js';
import { addSelectorOptions, type SelectorFlags, storeKeyOf } from './record-selector.js';

interface InspectFlags extends SelectorFlags {
  store?: string;
  body?: boolean;
  json?: boolean;
}

export function defineInspect(program: Command): void {
  const command = program
    .command('inspect')
    .description('Show the record a request with this key left in the store (never its body unless --body).')
    .addOption(storeOption());
  addSelectorOptions(command)
    .option('--body', 'also print the stored response body')
    .option('--json', 'print the record as JSON')
    .addHelpText(
      'after',
      `
Example:
  idemkit inspect --store sqlite:./.idemkit/idemkit.db --principal-hash <hash> --path /charges --key 8e0f…
Exit code 1 when there is no record (never used, released, or swept after retention).`,
    )
    .action(runInspect);
}

async function runInspect(flags: InspectFlags): Promise<void> {
  const key = storeKeyOf(flags);
  await withStore(storeUrlFrom(flags.store), 'read the record', async (opened) => {
    const record = await opened.store.get(key);
    if (record === undefined) {
      process.stderr.write(
        `no record for this request in ${opened.description} (store key ${key}): never used, ` +
          'swept after retention, or another principal, tenant, method or path\n',
      );
      process.exitCode = 1;
      return;
    }
    process.stdout.write(
      flags.json
        ? `${JSON.stringify(asJson(record, flags.body === true))}\n`
        : describe(record, flags.body === true),
    );
  });
}

function asJson(record: StoredRecord, withBody: boolean): object {
  const { response, ...rest } = record;
  if (!response) return rest;
  const { body, ...head } = response;
  return {
    ...rest,
    response: {
      ...head,
      bodyBytes: body.byteLength,
      ...(withBody ? { body: Buffer.from(body).toString('base64') } : {}),
    },
  };
}

function describe(record: StoredRecord, withBody: boolean): string {
  const now = Date.now();
  const at = (ms: number | null) =>
    ms === null ? '-' : `${new Date(ms).toISOString()} (${relative(ms - now)})`;
  const lines = [
    ['store key', record.key],
    ['state', record.state],
    ['generation', String(record.generation)],
    // `<version>:<HMAC>`: the version says which secret signed it; the HMAC itself tells nobody anything.
    ['fingerprint', `secret version ${record.fingerprint.split(':')[0]}`],
    ['created', at(record.createdAt)],
    ['lease until', at(record.leaseUntil)],
    ['completed', at(record.completedAt)],
    ['expires', at(record.expiresAt)],
  ];
  const response = record.response;
  if (response) {
    const size = response.bodyOmitted
      ? `body not kept (over maxStoredBytes; sha256 ${response.bodySha256 ?? '?'})`
      : `${response.body.byteLength} bytes`;
    lines.push(['response', `${response.status}, ${size}`]);
    for (const [name, value] of response.headers) lines.push(['', `${name}: ${value}`]);
  }
  let text = `${lines.map(([label, value]) => `${(label as string).padEnd(12)}${value}`).join('\n')}\n`;
  if (withBody && response && !response.bodyOmitted) text += `\n${bodyText(response.body)}\n`;
  return text;
}

/** UTF-8 when the body is text, base64 otherwise, so binary never garbles the terminal. */
function bodyText(body: Uint8Array): string {
  const text = Buffer.from(body).toString('utf8');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for control characters is the point
  return text.includes('\uFFFD') || /[\x00-\x08\x0e-\x1f]/.test(text)
    ? `(base64) ${Buffer.from(body).toString('base64')}`
    : text;
}

function relative(deltaMs: number): string {
  return deltaMs >= 0 ? `in ${formatDuration(deltaMs)}` : `${formatDuration(-deltaMs)} ago`;
}
