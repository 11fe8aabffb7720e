import { addressGroup } from '../domain/ip-range.ts';

/** Removes a Map's first-inserted entry: the oldest, when entries are re-inserted on use. */
function dropOldest(map: Map<string, unknown>): void {
  const { value, done } = map.keys().next();
  if (!done) map.delete(value);
}

/**
 * Counts events per key within a fixed window: more than `limit` within `windowMs`
 * and the key is over its limit until that window ends. Bounded: past `maxKeys`
 * finished windows go first, then the oldest.
 */
class WindowCounter {
  readonly #windows = new Map<string, { start: number; count: number }>();

  constructor(
    readonly limit: number,
    readonly windowMs: number,
    private readonly maxKeys: number,
  ) {}

  over(key: string, now: number): boolean {
    const w = this.#windows.get(key);
    if (!w) return false;
    if (now - w.start >= this.windowMs) {
      this.#windows.delete(key);
      return false;
    }
    return w.count > this.limit;
  }

  add(key: string, now: number): void {
    let w = this.#windows.get(key);
    if (!w || now - w.start >= this.windowMs) {
      if (this.#windows.size >= this.maxKeys) this.#prune(now);
      w = { start: now, count: 0 };
      this.#windows.set(key, w);
    }
    w.count++;
  }

  #prune(now: number): void {
    for (const [key, w] of this.#windows) if (now - w.start >= this.windowMs) this.#windows.delete(key);
    while (this.#windows.size >= this.maxKeys) dropOldest(this.#windows);
  }
}

export interface ThrottleSettings {
  /** Failed authentications per address (IPv4) or /64 (IPv6) within the window before 429. */
  addressLimit: number;
  /** Failed signatures for one key id within the window before 429 for that key id. */
  keyLimit: number;
  windowMs: number;
  /** An address that signed correctly with a key id within this time is not locked out by that key's limit. */
  trustMs?: number;
}

/** How many (key id, address) pairs of correct signatures are remembered. */
const TRUSTED_PAIRS = 100_000;
/** A remembered pair is refreshed at most this often, so a steady client costs no map churn. */
const TRUST_REFRESH_MS = 60_000;

/**
 * Throttling of failed authentications (API.md section 5.1), in memory per node, so a
 * flood of bad signatures costs no database writes:
 * - per client address, counted by IPv4 address or IPv6 /64: past the limit every request
 *   from it is refused until the window ends;
 * - per AccessKeyId, counted on wrong signatures: past the limit requests for that key id
 *   are refused, except from addresses that signed correctly with it within the last hour,
 *   so that guessing at a key cannot lock its rightful owner out.
 */
export class AuthThrottle {
  readonly #addresses: WindowCounter;
  readonly #keys: WindowCounter;
  readonly #trusted = new Map<string, number>();
  readonly #trustMs: number;

  constructor(readonly settings: ThrottleSettings) {
    this.#addresses = new WindowCounter(settings.addressLimit, settings.windowMs, 100_000);
    this.#keys = new WindowCounter(settings.keyLimit, settings.windowMs, 100_000);
    this.#trustMs = settings.trustMs ?? 3_600_000;
  }

  addressBlocked(ip: string, now: number): boolean {
    return this.#addresses.over(addressGroup(ip), now);
  }

  keyBlocked(keyId: string, ip: string, now: number): boolean {
    if (!this.#keys.over(keyId, now)) return false;
    const since = this.#trusted.get(`${keyId}\n${addressGroup(ip)}`);
    return since === undefined || now - since > this.#trustMs;
  }

  /** A failed authentication from `ip`; `wrongSignatureFor` names the key id when the signature itself was wrong. */
  recordFailure(ip: string, now: number, wrongSignatureFor?: string): void {
    this.#addresses.add(addressGroup(ip), now);
    if (wrongSignatureFor !== undefined) this.#keys.add(wrongSignatureFor, now);
  }

  /** A correct signature with `keyId` from `ip`. */
  recordSuccess(keyId: string, ip: string, now: number): void {
    const pair = `${keyId}\n${addressGroup(ip)}`;
    const seen = this.#trusted.get(pair);
    if (seen !== undefined && now - seen < TRUST_REFRESH_MS) return;
    // Map order is insertion order: re-inserting keeps the oldest pairs first, for eviction.
    this.#trusted.delete(pair);
    if (this.#trusted.size >= TRUSTED_PAIRS) dropOldest(this.#trusted);
    this.#trusted.set(pair, now);
  }
}
