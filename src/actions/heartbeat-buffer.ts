import type { Logger } from 'pino';
import type { AuditEvent } from '../domain/audit-event.ts';
import type { Heartbeat, Store } from '../store/store.ts';

/**
 * The latest heartbeat of each source, kept in memory and written to the store in one batch
 * every `intervalMs` and when the server stops (issue 14): a fleet's steady heartbeats cost one
 * write per source per interval, not one durable commit each. The stored LastHeartbeatTime may
 * lag by up to the interval; Available/Unavailable is decided from it against 3 heartbeat
 * periods, far longer. With several nodes each flushes what it received.
 */
export class HeartbeatBuffer {
  #pending = new Map<string, Heartbeat>();
  #timer?: NodeJS.Timeout;
  #flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    readonly intervalMs: number,
    /** The Online event of a beat from a source marked offline (recorded by the flush that writes it). */
    private readonly online?: (beat: Heartbeat) => AuditEvent,
  ) {}

  /** Keeps the newest beat per source; info not sent this time keeps what an earlier beat of the batch sent. */
  add(beat: Heartbeat): void {
    const earlier = this.#pending.get(beat.sourceId);
    this.#pending.set(beat.sourceId, {
      sourceId: beat.sourceId,
      at: Math.max(beat.at, earlier?.at ?? 0),
      systemInfo: beat.systemInfo ?? earlier?.systemInfo,
      statusInfo: beat.statusInfo ?? earlier?.statusInfo,
      actor: beat.actor ?? earlier?.actor,
    });
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      void this.flush();
    }, this.intervalMs).unref();
  }

  /** Writes what is pending (one after another, never two batches at once). */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(async () => {
      if (this.#pending.size === 0) return;
      const beats = [...this.#pending.values()];
      this.#pending = new Map();
      try {
        await this.store.recordHeartbeats(beats, this.online);
      } catch (err) {
        // Kept for the next flush, unless a newer beat of the same source arrived meanwhile.
        for (const b of beats) if (!this.#pending.has(b.sourceId)) this.#pending.set(b.sourceId, b);
        this.log.warn({ err: (err as Error).message, beats: beats.length }, 'heartbeats not written; retrying at the next flush');
        this.#timer ??= setTimeout(() => {
          this.#timer = undefined;
          void this.flush();
        }, this.intervalMs).unref();
      }
    });
    return this.#flushing;
  }

  /** At shutdown: the last beats are written before the store closes. */
  async close(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }
}
