import type { WebhookReceiver } from '../consumer/receive-webhook.js';
import { readBody, toWebResponse } from '../core/fetch-flow.js';

/**
 * A Web `Request` through a webhook receiver: the body is read as bytes (never parsed) and only
 * for POST, reading stops at the receiver's limit.
 */
export async function receiveFetchWebhook(receive: WebhookReceiver, request: Request): Promise<Response> {
  const body =
    request.method.toUpperCase() === 'POST'
      ? await readBody(request, receive.maxBodyBytes)
      : new Uint8Array(0);
  return toWebResponse(
    await receive({ method: request.method, headers: request.headers, body: body ?? null }),
  );
}
