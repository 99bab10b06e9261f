import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** How long a closing connection keeps reading what the client still sends. */
export const LINGER_MS = 2_000;
/** And how much of it, at most: past this the client has had its answer long enough. */
export const LINGER_BYTES = 32 * 1024 * 1024;

/**
 * Closes the connection of an answer sent before the request was read to its end (413, a
 * malformed request) in stages, as RFC 9112 §9.6 asks: the answer, then a half-close, then what
 * the client still sends is read and dropped for at most `LINGER_MS` / `LINGER_BYTES`, then the
 * socket is closed. Closing at once, with unread bytes in the kernel's buffer, makes TCP send a
 * reset, and a reset can erase the answer at the client before it has read it.
 */
export function closeAfterAnswer(res: ServerResponse): void {
  const socket = res.socket;
  const req = res.req as IncomingMessage | undefined;
  if (!socket || socket.destroyed || !req || req.complete) return;
  // Node closes a `Connection: close` socket with destroySoon() once the answer is written.
  socket.destroySoon = () => linger(socket, req);
}

function linger(socket: Socket, req: IncomingMessage): void {
  socket.end();
  let read = 0;
  const stop = (): void => {
    clearTimeout(timer);
    socket.destroy();
  };
  const timer = setTimeout(stop, LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  // Every byte the client sends now is done with: the request ending or the client closing
  // its side means nothing is left unread, so the close sends no reset.
  socket.once('end', stop);
  req.once('end', stop);
  req.on('data', (chunk: Buffer) => {
    read += chunk.length;
    if (read > LINGER_BYTES) stop();
  });
  req.resume();
}
