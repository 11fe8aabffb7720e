import type { Store } from '../store/store.ts';

/**
 * A store whose writes become durable at a later group commit (SQLite): it can
 * record a nonce at once, before the commit, so that the request's own write
 * joins the same commit. Whoever uses claimNonce must await settled() before it
 * answers: only then is the nonce - and anything else the request read - on disk.
 */
export interface EarlyNonceStore {
  claimNonce(keyId: string, nonce: string, now: number, expiresAt: number): boolean;
  /** Undefined when nothing is waiting for a commit. */
  settled(): Promise<void> | undefined;
}

export function earlyNonceStore(store: Store): EarlyNonceStore | undefined {
  const { claimNonce, settled } = store;
  return claimNonce && settled ? { claimNonce: claimNonce.bind(store), settled: settled.bind(store) } : undefined;
}
