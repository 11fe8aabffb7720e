/**
 * The one storage interface. sqlite/ and postgres/ implement it with hand-written
 * SQL; the same test suite (test/store/*) proves they behave alike.
 * All times are milliseconds since the epoch. Secrets arrive already sealed.
 */

import type { AccessKeyRecord } from '../domain/access-key.ts';
import type { AccessTokenRecord, ImportRefusal, TokenStatus } from '../domain/access-token.ts';
import type { Actor, AuditEvent, EventQuery, StoredEvent } from '../domain/audit-event.ts';
import type { OwnedSource, SourceFields, SourceRecord, SourceState } from '../domain/source-server.ts';
import type { ApprovalStatus, Tag, TagFilter, TagResourceType } from '../domain/tags.ts';
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
  /** Codes having every one of these tags (a filter without a value: any value of that key). */
  tags?: TagFilter[];
  now: number;
}

export interface SourceQuery extends Page {
  ids?: string[];
  name?: string;
  accessTokenId?: string;
  /** Available: last heartbeat at or after `onlineSince`; Unavailable: before it. */
  state?: SourceState;
  onlineSince: number;
  approvalStatus?: ApprovalStatus;
  /** Sources having every one of these tags. */
  tags?: TagFilter[];
}

/** A listed resource with its tags, by key. */
export type Tagged<T> = T & { tags: Tag[] };

/** ListTagResources: the (resource, tag) rows of the matching resources, by resource id then key. */
export interface TagQuery {
  type: TagResourceType;
  ids?: string[];
  tags?: TagFilter[];
  /** Rows after this one (the last row of the previous page). */
  after?: { resourceId: string; key: string };
  limit: number;
}

export interface TagRow {
  resourceId: string;
  key: string;
  value: string;
}

/** A change to several resources at once: all of them, or (naming the first that stops it) none. */
export type BatchOutcome = { outcome: 'done' } | { outcome: 'not-found'; id: string } | { outcome: 'too-many-tags'; id: string };

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

/**
 * A request's nonce handed to its own write (createAccessToken, importSource) instead of
 * being recorded first with useNonce: the store records it in the same statement or
 * transaction as the write, so the request costs one commit (PostgreSQL: one round trip for
 * a create). A live nonce makes the write throw NonceUsedError and change nothing. The
 * store sets `written` once the nonce is part of the write's transaction, whatever the
 * outcome (a refused import or a ClientToken mismatch still uses its nonce); a write that
 * throws before leaves it unset, and the caller then records the nonce with useNonce.
 */
export interface NonceUse {
  keyId: string;
  nonce: string;
  now: number;
  expiresAt: number;
  written?: boolean;
}

/** Thrown by a write whose NonceUse was seen before (and has not expired): nothing changed. */
export class NonceUsedError extends Error {
  override name = 'NonceUsedError';
  constructor() {
    super('the signature nonce was used before');
  }
}

/** What a create writes with the code, in its commit. */
export interface CreateExtras {
  tags?: readonly Tag[];
  nonce?: NonceUse;
  /** AccessToken.Create (API.md 5.5), recorded only when the code is created (not on a replay). */
  event?: AuditEvent;
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
  /** Recorded in the import's own transaction when given (see NonceUse). */
  nonce?: NonceUse;
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
   * `mayLag` (heartbeats, API.md 5.1): the answer will not wait for a commit, and the store need
   * not make the nonce survive a power loss (SQLite: it joins the turn's group commit without
   * asking for an fsync); it is still recorded at once, so a replay is refused everywhere.
   */
  useNonce(keyId: string, nonce: string, now: number, expiresAt: number, mayLag?: boolean): Promise<boolean>;
  /**
   * Resolves once everything written so far, nonces included, is durable; rejects when it
   * could not be made so. A store whose writes are durable when they resolve resolves at once.
   */
  settled(): Promise<void>;
  /** Forgets expired nonces and idempotency keys, and events (with their deliveries) older than `eventsBefore`. */
  purgeExpired(now: number, eventsBefore?: number): Promise<void>;

  /** Creates the code, with its tags, its event and the request's nonce (see NonceUse) in the same commit. */
  createAccessToken(token: AccessTokenRecord, idempotency?: IdempotencyKey, extra?: CreateExtras): Promise<CreateTokenOutcome>;
  getAccessToken(id: string): Promise<AccessTokenRecord | undefined>;
  listAccessTokens(query: TokenQuery): Promise<{ total: number; items: Tagged<AccessTokenRecord>[] }>;
  disableAccessToken(id: string, event?: AuditEvent): Promise<boolean>;
  deleteAccessToken(id: string, event?: AuditEvent): Promise<boolean>;

  /**
   * Atomically: check the code, use one slot for a new machine, create or update the source.
   * A source created by the import gets ApprovalStatus from the code (approvalOnCreate); an
   * import that creates the source or uses a slot of the code (its first with that code) copies
   * the code's tags onto it (inheritedTags).
   */
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
   * Marks offline, once, up to `limit` sources whose last heartbeat is before `onlineSince`
   * (the longest silent first), recording the event `offline` makes for each in the same
   * transaction; with several nodes each source is marked by one. Resolves with how many were
   * marked: `limit` means there may be more (the sweep calls again, so no transaction grows with
   * the fleet when a whole network goes silent at once).
   */
  markOffline(onlineSince: number, offline: (sourceId: string, lastHeartbeatAt: number) => AuditEvent, limit: number): Promise<number>;
  describeSources(query: SourceQuery): Promise<{ total: number; items: Tagged<SourceRecord>[] }>;
  modifySource(id: string, patch: { name?: string; description?: string }, event?: AuditEvent): Promise<boolean>;
  /** Deletes the source and its tags. */
  deleteSource(id: string, event?: AuditEvent): Promise<boolean>;
  /**
   * Pending → Approved for every id; an unknown id changes nothing. `approved` makes the event
   * of each source that changed (API.md 5.5), recorded in the same transaction.
   */
  approveSources(ids: readonly string[], approved?: (sourceId: string) => AuditEvent): Promise<BatchOutcome>;
  /**
   * Deletes every one of these sources and their tags (their keys stop working); an unknown id
   * changes nothing. `rejected` makes each deleted source's event, given the status it had.
   */
  rejectSources(ids: readonly string[], rejected?: (sourceId: string, status: ApprovalStatus) => AuditEvent): Promise<BatchOutcome>;

  /**
   * Sets the tags on every resource (a key it has gets the new value); a resource that does not
   * exist or would pass MAX_TAGS_PER_RESOURCE changes nothing. `tagged` makes each resource's event.
   */
  tagResources(type: TagResourceType, ids: readonly string[], tags: readonly Tag[], tagged?: (id: string) => AuditEvent): Promise<BatchOutcome>;
  /**
   * Removes these keys (or all tags) from every resource; an unknown resource changes nothing.
   * `untagged` makes the event of each resource that lost tags, given the keys it lost (sorted).
   */
  untagResources(
    type: TagResourceType,
    ids: readonly string[],
    keys: readonly string[] | 'all',
    untagged?: (id: string, removed: string[]) => AuditEvent,
  ): Promise<BatchOutcome>;
  listTagResources(query: TagQuery): Promise<TagRow[]>;

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
