/**
 * The one storage interface. sqlite/ and postgres/ implement it with hand-written
 * SQL; the same test suite (test/store/*) proves they behave alike.
 * All times are milliseconds since the epoch. Secrets arrive already sealed.
 */

import type { AccessKeyRecord } from '../domain/access-key.ts';
import type { AccessTokenRecord, ImportRefusal, TokenStatus } from '../domain/access-token.ts';
import type { Actor, AuditEvent, EventQuery, StoredEvent } from '../domain/audit-event.ts';
import type { OwnedSource, SourceFields, SourceRecord, SourceState } from '../domain/source-server.ts';
import type { AttemptResult, DeliveryRecord, DeliveryStatus, WebhookRecord } from '../domain/webhook.ts';

export interface Page {
  offset: number;
  limit: number;
}

export interface TokenQuery extends Page {
  ids?: string[];
  name?: string;
  /** An SMC status, or smcd's `disabled` (disabled and not expired: a part of `unactivated`). */
  status?: TokenStatus | 'disabled';
  now: number;
}

export interface SourceQuery extends Page {
  ids?: string[];
  name?: string;
  accessTokenId?: string;
  /** Available: last heartbeat at or after `onlineSince`; Unavailable: before it. */
  state?: SourceState;
  onlineSince: number;
}

/** A source's latest heartbeat, as buffered between flushes (src/actions/heartbeats.ts). */
export interface Heartbeat {
  sourceId: string;
  at: number;
  /** JSON object text; absent keeps the stored one. */
  systemInfo?: string;
  statusInfo?: string;
  /** Who sent it: an Online event names them. */
  actor?: Actor;
}

export interface IdempotencyKey {
  ownerKeyId: string;
  clientToken: string;
  /** Hash of the request's other parameters. */
  fingerprint: string;
  expiresAt: number;
}

export type CreateTokenOutcome =
  | { outcome: 'created'; token: AccessTokenRecord }
  | { outcome: 'replayed'; tokenId: string }
  | { outcome: 'mismatch' };

export interface ImportRequest {
  tokenId: string;
  machineId: string;
  now: number;
  clientIp: string;
  /** Pure domain check run on the locked token row (disabled, expired, address). */
  refusal: (token: AccessTokenRecord) => ImportRefusal | null;
  /**
   * Whether the request proves it holds the key of the live source this MachineId already
   * has (API.md section 5.2). Asked after the code's own refusals and before the count.
   */
  ownsSource: (source: OwnedSource) => boolean;
  fields: SourceFields;
  /** Ids to use when the machine has no source yet. */
  newSourceId: string;
  newKeyId: string;
  /** Seals the new source key secret for the key id the source ends up with. */
  sealKey: (keyId: string) => string;
  /**
   * The events to record with the outcome, in its transaction: `exhausted` when this import
   * took the code's last use. A refusal's events are committed although nothing else changes.
   */
  events?: (outcome: ImportOutcome, exhausted: boolean) => AuditEvent[];
}

export type ImportOutcome =
  | { outcome: 'refused'; reason: ImportRefusal; sourceId?: string }
  | { outcome: 'imported'; sourceId: string; keyId: string; usedSlot: boolean; created: boolean };

export interface DeliveryQuery extends Page {
  webhookId: string;
  status?: DeliveryStatus;
}

/** What a store reports of its own workings, for /metrics. */
export interface StoreObserver {
  /** Writes made durable together in one commit. */
  groupCommit(size: number): void;
}

/**
 * Every member is required: a store without a use for one implements it as a no-op (as
 * kysely's dialect adapters do), so nothing upstream asks which store it has.
 */
export interface Store {
  /** Where the data lives, for logs: never a password. */
  readonly description: string;
  close(): Promise<void>;
  /** Resolves when the store answers; used by /readyz. */
  ping(): Promise<void>;
  /** Starts reporting to `observer`; a store with nothing to report never calls it. */
  observe(observer: StoreObserver): void;

  getMeta(key: string): Promise<string | undefined>;
  setMeta(key: string, value: string): Promise<void>;
  /** Stores `value` unless the key exists; returns what is stored now. */
  putMetaIfAbsent(key: string, value: string): Promise<string>;

  /** False when the id exists, or when `key` is a root key and a root key exists. */
  /**
   * Every change below that takes an `event` records it in the change's own transaction,
   * only when the change happened (API.md 5.5).
   */
  insertAccessKey(key: AccessKeyRecord, event?: AuditEvent): Promise<boolean>;
  getRootAccessKey(): Promise<AccessKeyRecord | undefined>;
  getAccessKey(id: string): Promise<AccessKeyRecord | undefined>;
  listAccessKeys(): Promise<AccessKeyRecord[]>;
  setAccessKeyEnabled(id: string, enabled: boolean, event?: AuditEvent): Promise<boolean>;
  setAccessKeySecret(id: string, secretSealed: string): Promise<boolean>;
  deleteAccessKey(id: string, event?: AuditEvent): Promise<boolean>;

  /**
   * Records a nonce; false when this key id used it before and it has not expired. It may
   * resolve before the nonce is durable (a group-committing store records it in the commit
   * the request's own write joins): whoever answers from it awaits settled() first.
   */
  useNonce(keyId: string, nonce: string, now: number, expiresAt: number): Promise<boolean>;
  /**
   * Resolves once everything written so far, nonces included, is durable; rejects when it
   * could not be made so. A store whose writes are durable when they resolve resolves at once.
   */
  settled(): Promise<void>;
  /** Forgets expired nonces and idempotency keys, and events (with their deliveries) older than `eventsBefore`. */
  purgeExpired(now: number, eventsBefore?: number): Promise<void>;

  createAccessToken(token: AccessTokenRecord, idempotency?: IdempotencyKey, event?: AuditEvent): Promise<CreateTokenOutcome>;
  getAccessToken(id: string): Promise<AccessTokenRecord | undefined>;
  listAccessTokens(query: TokenQuery): Promise<{ total: number; items: AccessTokenRecord[] }>;
  disableAccessToken(id: string, event?: AuditEvent): Promise<boolean>;
  deleteAccessToken(id: string, event?: AuditEvent): Promise<boolean>;

  /** Atomically: check the code, use one slot for a new machine, create or update the source. */
  importSource(request: ImportRequest): Promise<ImportOutcome>;
  getSource(id: string): Promise<SourceRecord | undefined>;
  /** What signing with a source key needs: the source's id and its sealed key (no other column is read). */
  getSourceKey(keyId: string): Promise<OwnedSource | undefined>;
  /**
   * Writes heartbeats, many at once: each source's last-heartbeat time (never moved back) and
   * the info it sent. Sources that no longer exist are skipped. Resolves with how many were written.
   * A source marked offline (markOffline) is marked online again, with the event `online` makes.
   */
  recordHeartbeats(beats: readonly Heartbeat[], online?: (beat: Heartbeat) => AuditEvent): Promise<number>;
  /**
   * Marks offline, once, every source whose last heartbeat is before `onlineSince`, recording the
   * event `offline` makes for each in the same transaction; with several nodes each source is
   * marked by one. Resolves with how many were marked.
   */
  markOffline(onlineSince: number, offline: (sourceId: string, lastHeartbeatAt: number) => AuditEvent): Promise<number>;
  describeSources(query: SourceQuery): Promise<{ total: number; items: SourceRecord[] }>;
  modifySource(id: string, patch: { name?: string; description?: string }, event?: AuditEvent): Promise<boolean>;
  deleteSource(id: string, event?: AuditEvent): Promise<boolean>;

  /** Events, newest first (by the store's sequence). */
  describeEvents(query: EventQuery): Promise<StoredEvent[]>;

  createWebhook(webhook: WebhookRecord): Promise<void>;
  listWebhooks(): Promise<WebhookRecord[]>;
  getWebhook(id: string): Promise<WebhookRecord | undefined>;
  /** Deletes the webhook and its deliveries. */
  deleteWebhook(id: string): Promise<boolean>;
  describeDeliveries(query: DeliveryQuery): Promise<{ total: number; items: DeliveryRecord[] }>;
  /**
   * For every webhook subscribed to AccessToken.ExpiringSoon: each open code expiring within
   * its ExpiringSoonDays of `now` gets the event `expiring` makes, queued for that webhook,
   * once per (webhook, code) across nodes. Resolves with how many were queued.
   */
  noticeExpiringTokens(now: number, expiring: (tokenId: string, expiresAt: number, days: number) => AuditEvent): Promise<number>;
  /** Webhooks whose first pending delivery is due at `now`, and whose lease is free or held by `owner`. */
  webhooksDue(now: number, owner: string): Promise<string[]>;
  /** Takes or renews the webhook's delivery lease until `until`; undefined when another owner holds it. */
  leaseWebhook(id: string, owner: string, now: number, until: number): Promise<WebhookRecord | undefined>;
  releaseWebhook(id: string, owner: string): Promise<void>;
  /** The webhook's first pending delivery in its order. */
  nextDelivery(webhookId: string): Promise<DeliveryRecord | undefined>;
  /** Records an attempt on a pending delivery. */
  recordAttempt(webhookId: string, position: number, result: AttemptResult): Promise<void>;

  /** Re-seals every stored secret (master key rotation); returns how many were rewritten. */
  resealSecrets(reseal: (sealed: string, recordId: string) => string): Promise<number>;
}

/** Thrown by a store when the database cannot be reached; the API answers 503. */
export class StoreUnavailableError extends Error {
  constructor(cause: unknown) {
    super('the store is unreachable', { cause });
    this.name = 'StoreUnavailableError';
  }
}

/**
 * The store cannot be opened as it is: damaged, emptied, unreadable, or written by a newer
 * smcd. The message names the file or database and what to do; start-up prints it as is.
 */
export class StoreOpenError extends Error {
  override name = 'StoreOpenError';
}
