import { type CredentialKind, credentialKindOf } from '../crypto/ids.ts';
import type { SecretBox } from '../crypto/secret-box.ts';
import type { Store } from '../store/store.ts';

export interface Credential {
  kind: CredentialKind;
  keyId: string;
  secret: string;
  /** False for a disabled access key. A disabled activation code still signs: ImportSourceServer refuses it by name. */
  active: boolean;
  /** Access keys: the actions allowed (`*` for all operator actions). */
  allowedActions: readonly string[];
  /** Source keys: the source they belong to. */
  sourceId?: string;
}

/**
 * Finds the secret behind a key id. The row is read on every request (a disabled
 * or rotated key takes effect at once); decryption is cached, keyed by the sealed
 * text so that a rotated secret is never served from the cache.
 */
export class CredentialResolver {
  readonly #plain = new Map<string, string>();

  constructor(
    private readonly store: Store,
    private readonly box: SecretBox,
    private readonly cacheSize = 10_000,
  ) {}

  async resolve(keyId: string): Promise<Credential | undefined> {
    switch (credentialKindOf(keyId)) {
      case 'access-key': {
        const key = await this.store.getAccessKey(keyId);
        if (!key) return undefined;
        const secret = this.#open(key.secretSealed, key.id);
        return { kind: 'access-key', keyId, secret, active: key.enabled, allowedActions: key.allowedActions };
      }
      case 'access-token': {
        const token = await this.store.getAccessToken(keyId);
        if (!token) return undefined;
        const secret = this.#open(token.codeSealed, token.id);
        return { kind: 'access-token', keyId, secret, active: true, allowedActions: ['ImportSourceServer'] };
      }
      case 'source-key': {
        const source = await this.store.getSourceKey(keyId);
        if (!source) return undefined;
        const secret = this.#open(source.keySealed, source.keyId);
        return {
          kind: 'source-key',
          keyId,
          secret,
          active: true,
          allowedActions: ['ReportSourceServerHeartbeat'],
          sourceId: source.id,
        };
      }
      default:
        return undefined;
    }
  }

  #open(sealed: string, recordId: string): string {
    const hit = this.#plain.get(sealed);
    if (hit !== undefined) {
      // Refresh recency: Map keeps insertion order, so the oldest entry is first.
      this.#plain.delete(sealed);
      this.#plain.set(sealed, hit);
      return hit;
    }
    const plain = this.box.open(sealed, recordId);
    const oldest = this.#plain.keys().next().value;
    if (this.#plain.size >= this.cacheSize && oldest !== undefined) this.#plain.delete(oldest);
    this.#plain.set(sealed, plain);
    return plain;
  }
}
