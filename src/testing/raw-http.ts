import { connect } from 'node:net';

export interface RawResponse {
  status: number;
  /** Header lines as received (names lowercased), so tests can check for CR/LF smuggling. */
  headers: [string, string][];
  body: Buffer;
}

/**
 * Sends one HTTP/1.1 request with header bytes exactly as given (latin1), which fetch and
 * node:http refuse to send (CR, LF, NUL, non-ASCII). One connection per request, closed after.
 */
export function rawRequest(
  url: string,
  request: { method: string; path: string; headers: [string, string][]; body?: string },
  timeoutMs = 5_000,
): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  const body = Buffer.from(request.body ?? '', 'utf8');
  const lines = [
    `${request.method} ${request.path} HTTP/1.1`,
    `host: ${hostname}:${port}`,
    'connection: close',
  ];
  for (const [name, value] of request.headers) lines.push(`${name}: ${value}`);
  lines.push(`content-length: ${body.length}`);
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no response within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      try {
        resolve(parseResponse(Buffer.concat(chunks)));
      } catch (error) {
        reject(error);
      }
    });
    // No half-close: like real clients, wait for the server's answer and its `connection: close`.
    socket.write(Buffer.concat([head, body]));
  });
}

/**
 * Uploads a large body (chunked or with Content-Length) generated on the fly, and stops sending
 * as soon as the server answers. Returns the response and how many body bytes went out.
 */
export function rawUpload(
  url: string,
  request: { path: string; headers: [string, string][]; totalBytes: number; chunked: boolean },
  timeoutMs = 30_000,
): Promise<RawResponse & { sentBytes: number }> {
  const { hostname, port } = new URL(url);
  const lines = [`POST ${request.path} HTTP/1.1`, `host: ${hostname}:${port}`, 'connection: close'];
  for (const [name, value] of request.headers) lines.push(`${name}: ${value}`);
  lines.push(request.chunked ? 'transfer-encoding: chunked' : `content-length: ${request.totalBytes}`);
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const received: Buffer[] = [];
    let sent = 0;
    let answered = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no response within ${timeoutMs} ms`));
    }, timeoutMs);
    const finish = () => {
      clearTimeout(timer);
      try {
        resolve({ ...parseResponse(Buffer.concat(received)), sentBytes: sent });
      } catch (error) {
        reject(error);
      }
    };
    socket.on('data', (data) => {
      received.push(data);
      answered = true;
    });
    // A server that answers early and closes resets the upload: that is fine, we have the answer.
    socket.on('error', () =>
      answered ? undefined : reject(new Error('connection failed before a response')),
    );
    socket.on('close', finish);
    const pump = () => {
      while (!answered && sent < request.totalBytes) {
        const piece = chunk.subarray(0, Math.min(chunk.length, request.totalBytes - sent));
        sent += piece.length;
        const framed = request.chunked
          ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')])
          : piece;
        if (!socket.write(framed)) {
          socket.once('drain', pump);
          return;
        }
      }
      if (!answered && request.chunked) socket.write('0\r\n\r\n');
    };
    socket.write(`${lines.join('\r\n')}\r\n\r\n`, pump);
  });
}

function parseResponse(raw: Buffer): RawResponse {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`incomplete response (${raw.length} bytes)`);
  const [statusLine, ...headerLines] = raw.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(statusLine?.split(' ')[1]);
  const headers = headerLines.map((line): [string, string] => {
    const colon = line.indexOf(':');
    return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
  });
  return { status, headers, body: raw.subarray(end + 4) };
}
