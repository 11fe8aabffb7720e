import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { SecretBox } from '../crypto/secret-box.ts';
import { webhookSignature } from '../crypto/webhook-signature.ts';
import type { StoredEvent } from '../domain/audit-event.ts';
import type { Clock } from '../domain/time.ts';
import { formatTime } from '../domain/time.ts';
import { attemptResult, type Backoff, type WebhookRecord } from '../domain/webhook.ts';
import type { Store } from '../store/store.ts';

export interface DispatcherOptions {
  store: Store;
  box: SecretBox;
  log: Logger;
  clock: Clock;
  backoff: Backoff;
  /** How often the store is asked for due deliveries. */
  pollMs: number;
  /** An attempt without an answer within this long counts as failed (status 0). */
  timeoutMs: number;
  /** How long a node holds a webhook: longer than an attempt, renewed before each one. */
  leaseMs: number;
  random?: () => number;
}

/** The body of a delivery: the event as DescribeAuditEvents shows it, Detail a JSON object string. */
export const deliveryBody = (e: StoredEvent): string =>
  JSON.stringify({
    EventId: e.id,
    EventType: e.type,
    EventTime: formatTime(e.time),
    ResourceType: e.resourceType,
    ResourceId: e.resourceId,
    Detail: e.detail,
  });

/**
 * Delivers the queued events of every webhook (API.md 5.6). Deliveries are rows the store
 * wrote with their events, so nothing is lost when a node dies. One webhook is worked on by
 * one node at a time (a lease on its row, taken with one conditional UPDATE), in position
 * order; its first pending delivery blocks the later ones until it is delivered or failed.
 */
export class WebhookDispatcher {
  /** This process, as the holder of leases. */
  readonly owner = randomUUID();
  readonly #working = new Set<string>();
  readonly #workers = new Set<Promise<void>>();
  #timer?: NodeJS.Timeout;
  #ticking?: Promise<void>;
  #stopped = false;
  /** Aborts the attempts in flight when the node stops. */
  readonly #stopping = new AbortController();

  constructor(private readonly o: DispatcherOptions) {}

  start(): void {
    this.#timer = setInterval(() => this.poke(), this.o.pollMs).unref();
  }

  /** Looks for due deliveries now (also called after a local change queued some). */
  poke(): void {
    if (this.#stopped || this.#ticking) return;
    this.#ticking = this.#tick().finally(() => {
      this.#ticking = undefined;
    });
  }

  async #tick(): Promise<void> {
    let due: string[];
    try {
      due = await this.o.store.webhooksDue(this.o.clock(), this.owner);
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'webhook dispatcher: store not reachable; retrying');
      return;
    }
    for (const id of due) {
      if (this.#working.has(id)) continue;
      this.#working.add(id);
      const worker = this.#work(id).finally(() => {
        this.#working.delete(id);
        this.#workers.delete(worker);
      });
      this.#workers.add(worker);
    }
  }

  /** Attempts the webhook's due deliveries in order while it holds the lease. */
  async #work(id: string): Promise<void> {
    const { store, clock, leaseMs } = this.o;
    try {
      while (!this.#stopped) {
        const now = clock();
        const hook = await store.leaseWebhook(id, this.owner, now, now + leaseMs);
        if (!hook) return;
        const delivery = await store.nextDelivery(id);
        if (!delivery || delivery.nextAttemptAt > now) {
          await store.releaseWebhook(id, this.owner);
          return;
        }
        const status = await this.#post(hook, delivery.event);
        // Cut short by the node stopping: not an answer of the receiver; the event goes again later.
        if (this.#stopped) return;
        const result = attemptResult(delivery, clock(), status, this.o.backoff, (this.o.random ?? Math.random)());
        await store.recordAttempt(id, delivery.position, result);
        if (result.status !== 'delivered')
          this.o.log.info(
            { webhookId: id, eventId: delivery.event.id, statusCode: status, attempts: result.attempts, status: result.status },
            'webhook delivery not accepted',
          );
      }
    } catch (err) {
      this.o.log.warn({ webhookId: id, err: (err as Error).message }, 'webhook dispatcher: delivery interrupted; retrying');
    }
  }

  /** One attempt: the HTTP status, or 0 when there was no answer in time. */
  async #post(hook: WebhookRecord, event: StoredEvent): Promise<number> {
    const body = deliveryBody(event);
    const secret = this.o.box.open(hook.secretSealed, hook.id);
    try {
      const res = await fetch(hook.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'smcd-signature': webhookSignature(secret, Math.floor(this.o.clock() / 1000), body),
        },
        body,
        redirect: 'manual',
        signal: AbortSignal.any([this.#stopping.signal, AbortSignal.timeout(this.o.timeoutMs)]),
      });
      await res.body?.cancel().catch(() => {});
      return res.status;
    } catch {
      return 0;
    }
  }

  /** Stops polling and aborts the attempts under way (they are not recorded: their events go again). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#stopping.abort();
    await this.#ticking;
    await Promise.all(this.#workers);
  }
}
