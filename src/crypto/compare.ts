import { timingSafeEqual } from 'node:crypto';

/**
 * Constant-time string comparison for values whose length is public: signatures, HMACs and
 * hashes, each of a fixed length for its algorithm. The time depends on the lengths, never on
 * where the contents differ.
 */
export function safeEqual(a: string, b: string): boolean {
  const ba = Buffer.from(a);
  const bb = Buffer.from(b);
  if (ba.length !== bb.length) {
    timingSafeEqual(bb, bb);
    return false;
  }
  return timingSafeEqual(ba, bb);
}
