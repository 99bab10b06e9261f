import type { ServerResponse } from 'node:http';

/**
 * True once the client has gone (the response closed before it ended); false after 5 s. A
 * handler that must still be running when its client leaves waits on this instead of a fixed
 * sleep, which a loaded machine can outlast.
 */
export function clientGone(res: ServerResponse): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), 5_000);
    res.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}
