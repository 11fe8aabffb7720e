import { ipAllowed } from './ip-range.ts';

/** An activation code (SMC's AccessToken). Times are milliseconds since the epoch. */
export interface AccessTokenRecord {
  id: string;
  /** The code, sealed under the master key; shown to the operator once, at creation. */
  codeSealed: string;
  name: string;
  description: string;
  count: number;
  registeredCount: number;
  timeToLiveInDays: number;
  createdAt: number;
  expiresAt: number;
  disabled: boolean;
  ipAddressRange: string;
  createdBy: string;
  /** Sources first imported with this code wait for an operator's approval (API.md 5.4). */
  requireApproval: boolean;
}

export type TokenStatus = 'activated' | 'unactivated' | 'expired';

/** Why an import is refused, in the contract's order; `token-gone`: the code was deleted meanwhile. */
export type ImportRefusal = 'disabled' | 'expired' | 'address' | 'machine-in-use' | 'count' | 'token-gone';

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
 * disabled, expired, address. Ownership and the count are the store's to check atomically.
 */
export function importRefusal(token: AccessTokenRecord, now: number, clientIp: string): ImportRefusal | null {
  if (token.disabled) return 'disabled';
  if (now >= token.expiresAt) return 'expired';
  if (!ipAllowed(token.ipAddressRange, clientIp)) return 'address';
  return null;
}

/** The ApprovalStatus a source gets when an import with this code creates it. */
export function approvalOnCreate(token: Pick<AccessTokenRecord, 'requireApproval'>): 'Pending' | 'Approved' {
  return token.requireApproval ? 'Pending' : 'Approved';
}
