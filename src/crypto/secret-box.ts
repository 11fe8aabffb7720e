import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto';
import { randomBytesPooled } from './random-pool.ts';

const VERSION = 'v2';
/** A 16-byte GCM tag in base64url. */
const TAG_CHARS = 22;

/** A master key and the id sealed values name it by. */
export interface MasterKey {
  key: Buffer;
  /** HMAC of a constant under the key: identifies it without revealing it. */
  fingerprint: string;
  /** First 8 characters of the fingerprint, stored in each sealed value. */
  id: string;
}

export function masterKey(key: Buffer): MasterKey {
  if (key.length !== 32) throw new Error('a master key must be 32 bytes');
  const fingerprint = createHmac('sha256', key).update('smcd master key check v1').digest('base64url');
  return { key, fingerprint, id: fingerprint.slice(0, 8) };
}

/** Sealed under a key this box does not hold (yet): the keyring may need a reload. */
export class UnknownKeyError extends Error {
  constructor(readonly keyId: string) {
    super(`no master key with id ${keyId} is loaded`);
    this.name = 'UnknownKeyError';
  }
}

/**
 * AES-256-GCM under the master key. The record id is bound in as additional
 * authenticated data, so a ciphertext copied onto another row does not decrypt.
 * Format: `v2.<key id>.<iv>.<tag>.<ciphertext>` (base64url). Sealing uses the
 * primary key; opening uses whichever key of the ring the value names, which is
 * what lets a master key be rotated while readers keep working.
 */
export class SecretBox {
  #primary: MasterKey;
  #ring = new Map<string, MasterKey>();
  #lastRefresh = 0;
  /**
   * Called when a value names a key this box does not hold: reloads the keyring
   * (another process may have rotated the master key). At most once a second.
   */
  refresh?: () => void;

  constructor(primary: Buffer, others: Buffer[] = []) {
    this.#primary = masterKey(primary);
    this.setKeys(primary, others);
  }

  get fingerprint(): string {
    return this.#primary.fingerprint;
  }

  /** Fingerprints of every key held, primary first. */
  get fingerprints(): string[] {
    return [this.#primary.fingerprint, ...[...this.#ring.values()].filter((k) => k !== this.#primary).map((k) => k.fingerprint)];
  }

  /** Replaces the keyring (after a rotation). */
  setKeys(primary: Buffer, others: Buffer[] = []): void {
    this.#primary = masterKey(primary);
    this.#ring = new Map([[this.#primary.id, this.#primary]]);
    for (const k of others) {
      const mk = masterKey(k);
      if (!this.#ring.has(mk.id)) this.#ring.set(mk.id, mk);
    }
  }

  seal(plaintext: string, recordId: string): string {
    const iv = randomBytesPooled(12);
    const cipher = createCipheriv('aes-256-gcm', this.#primary.key, iv);
    cipher.setAAD(Buffer.from(recordId));
    const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [VERSION, this.#primary.id, iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), ct.toString('base64url')].join('.');
  }

  /** The id of the key a sealed value was sealed with. */
  static keyIdOf(sealed: string): string {
    return sealed.split('.')[1] ?? '';
  }

  /**
   * A sealed value's GCM tag (22 characters), new with every sealing: what tells two sealings of
   * a record apart without opening either. Empty when the value is not in this format.
   */
  static tagOf(sealed: string): string {
    const last = sealed.lastIndexOf('.');
    const tag = last > 0 ? sealed.slice(sealed.lastIndexOf('.', last - 1) + 1, last) : '';
    return tag.length === TAG_CHARS ? tag : '';
  }

  open(sealed: string, recordId: string): string {
    const [version, keyId, iv, tag, ct] = sealed.split('.');
    if (version !== VERSION || !keyId || !iv || !tag || ct === undefined) throw new Error('unrecognised secret format');
    let mk = this.#ring.get(keyId);
    if (!mk && this.refresh && Date.now() - this.#lastRefresh >= 1000) {
      this.#lastRefresh = Date.now();
      this.refresh();
      mk = this.#ring.get(keyId);
    }
    if (!mk) throw new UnknownKeyError(keyId);
    const decipher = createDecipheriv('aes-256-gcm', mk.key, Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(recordId));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString('utf8');
  }

  /** Re-seals under the primary key; values already under it are returned unchanged. */
  reseal(sealed: string, recordId: string): string {
    return SecretBox.keyIdOf(sealed) === this.#primary.id ? sealed : this.seal(this.open(sealed, recordId), recordId);
  }
}
