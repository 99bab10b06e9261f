import { ConfigError } from './config-error.js';

/*
 * Human units for the gateway's command line and environment (`30s`, `24h`, `1mb`), and for
 * store URL parameters. The JSON config file keeps plain numbers with the unit in the name
 * (`leaseMs`), so these are for typing only. They live with the gateway, whose configuration
 * parses them; the CLI imports them from here.
 */

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

// Binary multiples: the documented default "1mb" must equal maxBodyBytes' 1_048_576.
const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1_024,
  kib: 1_024,
  mb: 1_048_576,
  mib: 1_048_576,
  gb: 1_073_741_824,
  gib: 1_073_741_824,
};

const QUANTITY = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/;

/**
 * `500ms`, `30s`, `2m`, `24h`, `1d`, `1.5s` → milliseconds. A bare number other than `0` is
 * refused: whether `30` means seconds or milliseconds is exactly the bug units prevent.
 * @param source where the value came from, for the message (`--lease`, `IDEMKIT_LEASE`)
 */
export function parseDuration(text: string, source: string): number {
  const value = text.trim().toLowerCase();
  if (value === '0') return 0;
  const match = QUANTITY.exec(value);
  const unit = match ? DURATION_UNITS[match[2] as string] : undefined;
  if (!match || unit === undefined) {
    const hint = /^\d+(\.\d+)?$/.test(value) ? ` (add a unit: ${value}s or ${value}ms?)` : '';
    throw new ConfigError(
      `${source}: "${text}" is not a duration${hint}; use a number with a unit: 500ms, 30s, 2m, 24h, 1d`,
    );
  }
  return whole(Number(match[1]) * unit, text, source, 'millisecond');
}

/** `512kb`, `1mb`, `1.5mb`, `2048` (bytes) → bytes. Units are binary: 1kb = 1024 bytes. */
export function parseSize(text: string, source: string): number {
  const value = text.trim().toLowerCase();
  const match = QUANTITY.exec(value);
  const unit = match ? SIZE_UNITS[match[2] || 'b'] : undefined;
  if (!match || unit === undefined) {
    throw new ConfigError(`${source}: "${text}" is not a size; use bytes or a unit: 2048, 512kb, 1mb, 1gb`);
  }
  return whole(Number(match[1]) * unit, text, source, 'byte');
}

function whole(amount: number, text: string, source: string, unit: string): number {
  if (!Number.isSafeInteger(amount)) {
    throw new ConfigError(`${source}: "${text}" is not a whole number of ${unit}s or is too large`);
  }
  return amount;
}

/** `1500` → `1.5s`, for messages and the demo's output. */
export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${Number((ms / 1_000).toFixed(1))}s`;
  if (ms < 3_600_000) return `${Number((ms / 60_000).toFixed(1))}m`;
  return `${Number((ms / 3_600_000).toFixed(1))}h`;
}
