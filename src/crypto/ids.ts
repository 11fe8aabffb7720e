import { randomUUID } from 'node:crypto';
import { randomBytesPooled } from './random-pool.ts';

const LOWER_ALNUM = 'abcdefghijklmnopqrstuvwxyz0123456789';
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/**
 * Uniform random string over `alphabet` from the CSPRNG. Rejection sampling keeps
 * every character equally likely (a plain `byte % n` would favour the first letters).
 */
export function randomString(length: number, alphabet: string): string {
  const limit = 256 - (256 % alphabet.length);
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytesPooled(length * 2)) {
      if (byte >= limit) continue;
      out += alphabet[byte % alphabet.length];
      if (out.length === length) break;
    }
  }
  return out;
}

export const newAccessTokenId = (): string => `at-${randomString(20, LOWER_ALNUM)}`;
export const newAccessTokenCode = (): string => randomString(32, ALNUM);
export const newSourceId = (): string => `s-${randomString(20, LOWER_ALNUM)}`;
export const newSourceKeyId = (): string => `sk-${randomString(20, LOWER_ALNUM)}`;
export const newSourceKeySecret = (): string => randomString(32, ALNUM);
export const newEventId = (): string => `ev-${randomString(20, LOWER_ALNUM)}`;
export const newWebhookId = (): string => `wh-${randomString(20, LOWER_ALNUM)}`;
export const newWebhookSecret = (): string => randomString(32, ALNUM);
export const newAccessKeyId = (): string => `LTAI${randomString(20, ALNUM)}`;
export const newAccessKeySecret = (): string => randomString(30, ALNUM);

/** SMC's RequestId: an upper-case UUID. */
export const newRequestId = (): string => randomUUID().toUpperCase();

export type CredentialKind = 'access-key' | 'access-token' | 'source-key';

/** Which table a key id lives in, from its prefix alone (no lookup needed). */
export function credentialKindOf(keyId: string): CredentialKind | undefined {
  if (/^LTAI[A-Za-z0-9]{20}$/.test(keyId)) return 'access-key';
  if (/^at-[a-z0-9]{20}$/.test(keyId)) return 'access-token';
  if (/^sk-[a-z0-9]{20}$/.test(keyId)) return 'source-key';
  return undefined;
}
