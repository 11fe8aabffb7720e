import type { AccessTokenRecord, ImportRefusal, TokenStatus } from '../store/store.ts';
import { ipAllowed } from './ip-range.ts';

/**
 * Status as SMC reports it: `expired` once past its lifetime; otherwise
 * `unactivated` when disabled or used up; otherwise `activated`.
 */
export function tokenStatus(token: AccessTokenRecord, now: number): TokenStatus {
  if (now >= token.expiresAt) return 'expired';
  if (token.disabled || token.registeredCount >= token.count) return 'unactivated';
  return 'activated';
}

/**
 * Why an import with this code must be refused, checked in the contract's order:
 * disabled, expired, address. The count is the store's to check atomically.
 */
export function importRefusal(token: AccessTokenRecord, now: number, clientIp: string): ImportRefusal | null {
  if (token.disabled) return 'disabled';
  if (now >= token.expiresAt) return 'expired';
  if (!ipAllowed(token.ipAddressRange, clientIp)) return 'address';
  return null;
}
