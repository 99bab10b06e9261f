import { randomFillSync } from 'node:crypto';

const TOKEN_BYTES = 16;
const POOL_TOKENS = 256;
const pool = Buffer.allocUnsafe(TOKEN_BYTES * POOL_TOKENS);
let offset = pool.length;

/**
 * A 128-bit random owner token (base64url, 22 characters) for one claim attempt. Drawn from a
 * pool refilled by one `randomFillSync` per 256 tokens: `randomBytes` per token pays a syscall,
 * and `randomUUID` builds its hex text from several intermediate strings.
 */
export function ownerToken(): string {
  if (offset >= pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const token = pool.toString('base64url', offset, offset + TOKEN_BYTES);
  offset += TOKEN_BYTES;
  return token;
}
