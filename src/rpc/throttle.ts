/**
 * Per-address limit on failed authentications: more than `limit` failures within
 * `windowMs` and every request from that address is refused until the window
 * ends. Kept in memory per node: a flood of bad signatures then costs no
 * database writes, and with N nodes an address gets at most N x limit tries.
 */
export class FailureThrottle {
  readonly #windows = new Map<string, { start: number; failures: number }>();

  constructor(
    readonly limit: number,
    readonly windowMs: number,
    private readonly maxAddresses = 100_000,
  ) {}

  blocked(address: string, now: number): boolean {
    const w = this.#windows.get(address);
    if (!w) return false;
    if (now - w.start >= this.windowMs) {
      this.#windows.delete(address);
      return false;
    }
    return w.failures > this.limit;
  }

  recordFailure(address: string, now: number): void {
    let w = this.#windows.get(address);
    if (!w || now - w.start >= this.windowMs) {
      if (this.#windows.size >= this.maxAddresses) this.prune(now);
      w = { start: now, failures: 0 };
      this.#windows.set(address, w);
    }
    w.failures++;
  }

  /** Drops finished windows; when still full, the oldest entries go. */
  prune(now: number): void {
    for (const [address, w] of this.#windows) {
      if (now - w.start >= this.windowMs) this.#windows.delete(address);
    }
    while (this.#windows.size >= this.maxAddresses) this.#windows.delete(this.#windows.keys().next().value!);
  }
}
