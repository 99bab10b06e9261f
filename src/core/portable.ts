/*
 * What differs between Node and the other runtimes the engine runs on (Bun, Deno, Workers):
 * Workers' timers are plain numbers with no `unref()`, and there is no `process.emitWarning`.
 */

/** Lets a timer not keep the process alive, where the runtime has that notion. */
export function unrefTimer(timer: unknown): void {
  (timer as { unref?: () => void } | null)?.unref?.();
}

/** The default `onWarning`: Node's process warnings, or `console.warn` where there are none. */
export function defaultWarning(message: string): void {
  const proc = (globalThis as { process?: { emitWarning?: (m: string, type: string) => void } }).process;
  if (typeof proc?.emitWarning === 'function') proc.emitWarning(message, 'IdemkitWarning');
  else console.warn(`IdemkitWarning: ${message}`);
}
