/** Rebuilds a request body for each attempt, for bodies that cannot be buffered (a large file stream). */
export type BodyFactory = () => BodyInit | Promise<BodyInit>;

/** What an attempt sends: fixed bytes, or a source called once per attempt. */
export type AttemptBody = Uint8Array | (() => Promise<BodyInit>) | undefined;

/**
 * Reads any fetch body (string, bytes, Blob, URLSearchParams, FormData, a stream) into bytes
 * once, so every attempt sends the same ones, with the content type fetch would have given it
 * (a FormData's multipart boundary included).
 */
export async function bufferBody(body: BodyInit): Promise<{ bytes: Uint8Array; contentType: string | null }> {
  const request = new Request('http://body.invalid/', {
    method: 'POST',
    body,
    duplex: 'half',
  } as RequestInit);
  return {
    bytes: new Uint8Array(await request.arrayBuffer()),
    contentType: request.headers.get('content-type'),
  };
}
