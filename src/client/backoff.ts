/**
 * Delay before retry `retry` (1 for the first retry): "full jitter", a random point in
 * [0, min(maxDelayMs, baseDelayMs · 2^(retry-1))]. Spreading retries over the whole window is
 * what keeps many clients that failed together from retrying together.
 */
export function fullJitterDelay(
  retry: number,
  baseDelayMs: number,
  maxDelayMs: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** Math.max(0, retry - 1));
  return Math.floor(random() * ceiling);
}

const DELAY_SECONDS = /^\d+$/;
const ASCTIME = /^[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$/;

/**
 * `Retry-After` (RFC 9110 §10.2.3) in milliseconds from `nowMs`: delay-seconds or an HTTP-date.
 * A date in the past means "now" (0). Undefined when the header is absent or unreadable, so
 * the caller falls back to its own backoff.
 */
export function parseRetryAfter(
  value: string | null | undefined,
  nowMs: number = Date.now(),
): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (text === '') return undefined;
  if (DELAY_SECONDS.test(text)) {
    const seconds = Number(text);
    return Number.isSafeInteger(seconds) ? seconds * 1_000 : undefined;
  }
  // Date.parse reads all three HTTP-date forms (IMF-fixdate, RFC 850, asctime). A bare number
  // with a sign or a fraction is not a valid delay, and Date.parse would misread it as a year.
  if (/^[-+.\d\s]+$/.test(text)) return undefined;
  // asctime dates carry no zone and are GMT (RFC 9110 §5.6.7); Date.parse would read local time.
  const at = Date.parse(ASCTIME.test(text) ? `${text} GMT` : text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}
