import { connect } from 'node:net';

export interface UploadOutcome {
  /** The status line's code, or `undefined` when the connection ended without an answer. */
  status: number | undefined;
  /** The answer's head and body as received (latin1), empty when there was none. */
  raw: string;
  /** Body bytes written before the answer came or the connection ended. */
  sentBytes: number;
  /** The connection was reset (ECONNRESET, EPIPE) rather than closed. */
  reset: boolean;
}

/**
 * Uploads `totalBytes` generated on the fly (64 KiB at a time, with backpressure: never held
 * whole), chunked or with Content-Length, and stops sending once an answer starts. Unlike
 * src/testing/raw-http.ts `rawUpload`, a connection that ends without an answer is an outcome
 * to report, not an error: a server that closes on a client still sending can have its answer
 * erased by the TCP reset that follows (RFC 9112 §9.6).
 */
export function uploadGenerated(
  url: string,
  request: { path: string; headers: [string, string][]; totalBytes: number; chunked: boolean },
  timeoutMs = 60_000,
): Promise<UploadOutcome> {
  const { hostname, port } = new URL(url);
  const lines = [`POST ${request.path} HTTP/1.1`, `host: ${hostname}:${port}`, 'connection: close'];
  for (const [name, value] of request.headers) lines.push(`${name}: ${value}`);
  lines.push(request.chunked ? 'transfer-encoding: chunked' : `content-length: ${request.totalBytes}`);
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const frame = (piece: Buffer) =>
    request.chunked
      ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')])
      : piece;
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const received: Buffer[] = [];
    let sent = 0;
    let reset = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the upload neither ended nor was answered within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('data', (data) => received.push(data));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNRESET' || error.code === 'EPIPE') reset = true;
      else reject(error);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const raw = Buffer.concat(received).toString('latin1');
      const status = /^HTTP\/1\.1 (\d{3}) /.exec(raw)?.[1];
      resolve({ status: status === undefined ? undefined : Number(status), raw, sentBytes: sent, reset });
    });
    const pump = (): void => {
      while (received.length === 0 && sent < request.totalBytes && !socket.destroyed) {
        const piece = chunk.subarray(0, Math.min(chunk.length, request.totalBytes - sent));
        sent += piece.length;
        if (!socket.write(frame(piece))) {
          socket.once('drain', pump);
          return;
        }
      }
      if (received.length === 0 && sent === request.totalBytes && request.chunked) socket.write('0\r\n\r\n');
    };
    socket.write(`${lines.join('\r\n')}\r\n\r\n`, pump);
  });
}

/** The `type` of a problem+json answer in `raw`, if it is one. */
export function problemTypeOf(raw: string): string | undefined {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0 || !/^content-type:\s*application\/problem\+json/im.test(raw.slice(0, end))) return undefined;
  try {
    return (JSON.parse(raw.slice(end + 4)) as { type?: string }).type;
  } catch {
    return undefined;
  }
}
