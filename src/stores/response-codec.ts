import type { StoredResponse } from '../core/store.js';

/*
 * One binary blob per stored response, so SQL and Redis stores keep a single column or field:
 * [u32 big-endian length of the JSON meta][JSON meta][body bytes]. The body stays raw bytes, so
 * a replay is byte-identical whatever the content type.
 */

interface ResponseMeta {
  s: number;
  h: [string, string][];
  o?: true;
  x?: string;
}

export function encodeResponse(response: StoredResponse): Uint8Array {
  const meta: ResponseMeta = { s: response.status, h: response.headers };
  if (response.bodyOmitted) meta.o = true;
  if (response.bodySha256 !== undefined) meta.x = response.bodySha256;
  const metaBytes = Buffer.from(JSON.stringify(meta), 'utf8');
  const out = Buffer.allocUnsafe(4 + metaBytes.length + response.body.byteLength);
  out.writeUInt32BE(metaBytes.length, 0);
  metaBytes.copy(out, 4);
  out.set(response.body, 4 + metaBytes.length);
  return out;
}

export function decodeResponse(blob: Uint8Array): StoredResponse {
  const buffer = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  if (buffer.length < 4) throw new Error('stored response is truncated');
  const metaLength = buffer.readUInt32BE(0);
  if (4 + metaLength > buffer.length) throw new Error('stored response is truncated');
  const meta = JSON.parse(buffer.subarray(4, 4 + metaLength).toString('utf8')) as ResponseMeta;
  const response: StoredResponse = {
    status: meta.s,
    headers: meta.h,
    body: new Uint8Array(buffer.subarray(4 + metaLength)),
  };
  if (meta.o) response.bodyOmitted = true;
  if (meta.x !== undefined) response.bodySha256 = meta.x;
  return response;
}
