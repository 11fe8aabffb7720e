import type { EventType, StoredEvent } from './audit-event.ts';

/**
 * Webhooks (API.md section 5.6): where events are POSTed, and the rules of their delivery.
 * Pure functions of the times and the random draw they are given.
 */

/** The webhook-only event types; every audit type may be subscribed too. */
export const WEBHOOK_ONLY_TYPES = ['AccessToken.ExpiringSoon', 'AccessToken.Exhausted'] as const satisfies readonly EventType[];

export interface WebhookRecord {
  id: string;
  url: string;
  eventTypes: EventType[];
  expiringSoonDays: number;
  /** The signing secret, sealed under the master key (record id: the webhook id). */
  secretSealed: string;
  createdAt: number;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

export interface DeliveryRecord {
  webhookId: string;
  /** Its place in the webhook's order: deliveries go out by ascending position. */
  position: number;
  event: StoredEvent;
  status: DeliveryStatus;
  attempts: number;
  firstAttemptAt: number;
  lastAttemptAt: number;
  lastStatusCode: number;
  nextAttemptAt: number;
}

/** What one attempt changed on its delivery. */
export interface AttemptResult {
  attempts: number;
  firstAttemptAt: number;
  at: number;
  statusCode: number;
  status: DeliveryStatus;
  nextAttemptAt: number;
}

/** The timing of retries, scaled from one base (10 s in production; tests shrink it). */
export interface Backoff {
  baseMs: number;
  /** Longest wait between two attempts: 1 h for a 10 s base. */
  capMs: number;
  /** Attempts stop once this long has passed since the first: 24 h for a 10 s base. */
  giveUpMs: number;
}

export const backoffFrom = (baseMs: number): Backoff => ({ baseMs, capMs: baseMs * 360, giveUpMs: baseMs * 8_640 });

/**
 * After attempt number `attempts` (1 = the first) failed: 10 s, 20 s, 40 s, ... with up to 20 %
 * added at random (`random` in [0, 1)), capped at 1 h between attempts.
 */
export function retryDelay(attempts: number, backoff: Backoff, random: number): number {
  const plain = Math.min(backoff.capMs, backoff.baseMs * 2 ** Math.min(attempts - 1, 40));
  return Math.min(backoff.capMs, Math.round(plain * (1 + 0.2 * random)));
}

/** The outcome of an attempt made at `now` that got `statusCode` (0: no answer). */
export function attemptResult(
  d: Pick<DeliveryRecord, 'attempts' | 'firstAttemptAt'>,
  now: number,
  statusCode: number,
  backoff: Backoff,
  random: number,
): AttemptResult {
  const attempts = d.attempts + 1;
  const firstAttemptAt = d.attempts === 0 ? now : d.firstAttemptAt;
  if (statusCode >= 200 && statusCode < 300) return { at: now, statusCode, status: 'delivered', nextAttemptAt: now, attempts, firstAttemptAt };
  const next = now + retryDelay(attempts, backoff, random);
  if (next - firstAttemptAt > backoff.giveUpMs) return { at: now, statusCode, status: 'failed', nextAttemptAt: now, attempts, firstAttemptAt };
  return { at: now, statusCode, status: 'pending', nextAttemptAt: next, attempts, firstAttemptAt };
}
