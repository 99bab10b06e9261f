import { connect, type Socket } from 'node:net';

export interface RawAnswer {
  /** 0 when the connection closed without a status line. */
  status: number;
  head: string;
  body: string;
  /** Milliseconds from connect to close. */
  elapsedMs: number;
}

/**
 * Writes `bytes` exactly as given (latin1) on a fresh connection and collects whatever comes back
 * until the server closes it; rejects after `timeoutMs` if it never does.
 */
export function sendRaw(url: string, bytes: string, timeoutMs = 5_000): Promise<RawAnswer> {
  return exchange(url, timeoutMs, (socket) => socket.write(Buffer.from(bytes, 'latin1')));
}

/**
 * Writes `head` then one byte of `drip` every `everyMs` (bounded by the string's length) and
 * resolves when the server closes the connection: the slow-client attacks.
 */
export function sendSlowly(
  url: string,
  head: string,
  drip: string,
  everyMs: number,
  timeoutMs = 5_000,
): Promise<RawAnswer> {
  return exchange(url, timeoutMs, (socket) => {
    socket.write(head);
    let i = 0;
    const timer = setInterval(() => {
      if (i >= drip.length || socket.destroyed) return clearInterval(timer);
      socket.write(drip.charAt(i++));
    }, everyMs);
    socket.once('close', () => clearInterval(timer));
  });
}

function exchange(url: string, timeoutMs: number, write: (socket: Socket) => void): Promise<RawAnswer> {
  const { hostname, port } = new URL(url);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname.replace(/^\[|\]$/g, ''));
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server kept the connection open for ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    // A reset after the answer is fine: the server closed on a client still writing.
    socket.on('error', () => {});
    socket.once('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const head = end < 0 ? text : text.slice(0, end);
      resolve({
        status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0),
        head,
        body: end < 0 ? '' : text.slice(end + 4),
        elapsedMs: Date.now() - started,
      });
    });
    socket.once('connect', () => write(socket));
  });
}
