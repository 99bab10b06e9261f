import { readFileSync, writeFileSync } from 'node:fs';

/*
 * The peak resident memory of another process, from Linux's /proc: VmHWM is the most RSS the
 * process has had, and writing 5 to clear_refs resets it to the current RSS. So a test can ask
 * "how far above its resting size did the server go while it handled this?" without sampling
 * (a sampler would miss a short peak).
 */

const MiB = 1_048_576;

function statusField(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status);
  if (!match) throw new Error(`no ${field} in /proc/${pid}/status`);
  return (Number(match[1]) * 1024) / MiB;
}

/** Resets the peak to the current RSS and returns that RSS, in MiB. */
export function resetPeakRss(pid: number): number {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
  return statusField(pid, 'VmRSS');
}

/** The peak RSS since the last reset, in MiB. */
export function peakRss(pid: number): number {
  return statusField(pid, 'VmHWM');
}
