import { randomFillSync } from 'node:crypto';

const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let offset = POOL_SIZE;

/**
 * `n` bytes from the CSPRNG, served from a pool refilled 4 KiB at a time: one
 * call into OpenSSL per few hundred ids instead of one per id, code and IV.
 * Each byte is handed out once, and the caller gets its own copy.
 */
export function randomBytesPooled(n: number): Buffer {
  if (n > POOL_SIZE) {
    const big = Buffer.allocUnsafe(n);
    randomFillSync(big);
    return big;
  }
  if (offset + n > POOL_SIZE) {
    randomFillSync(pool);
    offset = 0;
  }
  const out = Buffer.from(pool.subarray(offset, offset + n));
  // Used bytes are wiped so they cannot be read back from the pool.
  pool.fill(0, offset, offset + n);
  offset += n;
  return out;
}
