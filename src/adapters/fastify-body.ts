import { Readable } from 'node:stream';

/*
 * The raw request body for the fingerprint. Fastify parses the body before `preHandler`, and a
 * parsed body is not the bytes the client sent (key order, number precision), so the plugin's
 * `preParsing` hook reads the bytes first, within `maxBodyBytes`, and hands Fastify's content
 * type parser a stream of the same bytes.
 */

/** The stream `preParsing` receives: the request, or what an earlier hook (decompression) made. */
export interface PayloadStream extends Readable {
  /** Set by decompressing hooks: the bytes received on the wire, for Fastify's `bodyLimit`. */
  receivedEncodedLength?: number;
}

/**
 * Reads the whole payload, or resolves `undefined` once it passes `maxBytes`: a declared length
 * over the limit is refused before a byte is read, and reading stops at the limit (never
 * buffer past it). Rejects when the client goes away before the body ended.
 */
export function readPayload(
  payload: PayloadStream,
  declaredLength: number,
  maxBytes: number,
): Promise<Uint8Array | undefined> {
  if (declaredLength > maxBytes) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let ended = false;
    function onData(chunk: Buffer | string): void {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      total += bytes.length;
      if (total <= maxBytes) {
        chunks.push(bytes);
        return;
      }
      cleanup();
      payload.pause();
      resolve(undefined);
    }
    function onEnd(): void {
      ended = true;
      cleanup();
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, total));
    }
    function onError(error: Error): void {
      cleanup();
      reject(error);
    }
    function onClose(): void {
      if (!ended) onError(new Error('the client closed the connection before the body ended'));
    }
    function cleanup(): void {
      payload.removeListener('data', onData);
      payload.removeListener('end', onEnd);
      payload.removeListener('error', onError);
      payload.removeListener('close', onClose);
    }
    payload.on('data', onData);
    payload.on('end', onEnd);
    payload.on('error', onError);
    payload.on('close', onClose);
    payload.resume();
  });
}

/** A stream of the bytes already read, for Fastify's parser; it keeps the wire length it needs. */
export function payloadOf(body: Uint8Array, from: PayloadStream): Readable {
  const stream = new Readable({ read: noop });
  if (body.byteLength > 0) stream.push(body);
  stream.push(null);
  if (from.receivedEncodedLength !== undefined) {
    (stream as PayloadStream).receivedEncodedLength = from.receivedEncodedLength;
  }
  return stream;
}

function noop(): void {}
