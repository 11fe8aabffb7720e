import { type CredentialKind, credentialKindOf } from '../crypto/ids.ts';
import { SecretBox } from '../crypto/secret-box.ts';
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
 * or rotated key takes effect at once); decryption is cached per key id together with
 * the sealed value's GCM tag, which changes with every sealing, so a rotated or resealed
 * secret is never served from the cache.
 *
 * The cache holds one entry per key that signs (about 170 bytes each: 17 MB for a fleet
 * of 100,000 sources). Sized for such a fleet: a smaller cache, cycled through by sources
 * heartbeating in turn, missed on every beat and opened the secret each time (AES-GCM:
 * 11 % of the CPU of a 50,000-source fleet in bench:fleet's profile).
 */
export class CredentialResolver {
  /** Key id -> the sealed value's tag and the plain secret, least recently used first. */
  readonly #plain = new Map<string, { tag: string; plain: string }>();

  constructor(
    private readonly store: Store,
    private readonly box: SecretBox,
    private readonly cacheSize = 100_000,
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
    const tag = SecretBox.tagOf(sealed);
    const hit = this.#plain.get(recordId);
    if (hit !== undefined && tag !== '' && hit.tag === tag) {
      // Refresh recency: Map keeps insertion order, so the oldest entry is first.
      this.#plain.delete(recordId);
      this.#plain.set(recordId, hit);
      return hit.plain;
    }
    const plain = this.box.open(sealed, recordId);
    if (tag === '') return plain;
    this.#plain.delete(recordId);
    const oldest = this.#plain.keys().next().value;
    if (this.#plain.size >= this.cacheSize && oldest !== undefined) this.#plain.delete(oldest);
    // A copy of the tag: a slice would keep the whole sealed value alive in the cache.
    this.#plain.set(recordId, { tag: Buffer.from(tag, 'latin1').toString('latin1'), plain });
    return plain;
  }
}
