import type { AccessKeyRecord } from '../../domain/access-key.ts';
import { type AccessTokenRecord, approvalOnCreate } from '../../domain/access-token.ts';
import type { AuditEvent, EventQuery, StoredEvent } from '../../domain/audit-event.ts';
import type { OwnedSource, SourceRecord } from '../../domain/source-server.ts';
import { type ApprovalStatus, inheritedTags, MAX_TAGS_PER_RESOURCE, type Tag, type TagFilter, type TagResourceType } from '../../domain/tags.ts';
import type { AttemptResult, DeliveryRecord, WebhookRecord } from '../../domain/webhook.ts';
import {
  accessKeyFromRow,
  accessKeyValues,
  accessTokenFromRow,
  accessTokenValues,
  deliveryFromRow,
  eventFromRow,
  eventTypesColumn,
  eventValues,
  keysById,
  ownedSourceFromRow,
  sortedIds,
  sourceFieldValues,
  sourceFromRow,
  webhookFromRow,
  withTags,
} from '../rows.ts';
import {
  type BatchOutcome,
  type CreateExtras,
  type CreateTokenOutcome,
  type DeliveryQuery,
  type Heartbeat,
  type IdempotencyKey,
  type ImportOutcome,
  type ImportRequest,
  type NonceUse,
  NonceUsedError,
  type SourceQuery,
  type Store,
  type StoreObserver,
  StoreUnavailableError,
  type Tagged,
  type TagQuery,
  type TagRow,
  type TokenQuery,
} from '../store.ts';
import {
  describePostgresUrl,
  isUnavailableError,
  noop,
  PgConnection,
  type PgConnectionOptions,
  type Prepared,
  prepared,
  type Query,
  RetryTransaction,
} from './connection.ts';
import { migrate } from './migrate.ts';
import { COUNT_SHARDS } from './migrations.ts';

const countShard = () => Math.floor(Math.random() * COUNT_SHARDS);

/** Pages up to this offset of an unfiltered list (or an id list) are cheap. */
const CHEAP_OFFSET = 1_000;

const INSERT_ACCESS_TOKEN = `INSERT INTO access_tokens (id, code_sealed, name, description, count, registered_count, ttl_days,
  created_at, expires_at, disabled, ip_address_range, created_by, require_approval)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`;

/**
 * A nonce: a live row refuses (also when another node's insert of it is still in flight:
 * ON CONFLICT waits for it); an expired row is taken over, not a replay. Its four
 * parameters ($n to $n+3: key id, nonce, expires at, now) start at `first`.
 */
const nonceUpsert = (first: number) =>
  `INSERT INTO nonces (key_id, nonce, expires_at) VALUES ($${first}, $${first + 1}, $${first + 2})
   ON CONFLICT (key_id, nonce) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE nonces.expires_at <= $${first + 3}`;

const nonceValues = (n: NonceUse) => [n.keyId, n.nonce, n.expiresAt, n.now];

const USE_NONCE = prepared('use_nonce', nonceUpsert(1));

const GET_ACCESS_KEY = prepared(
  'get_access_key',
  'SELECT id, secret_sealed, description, allowed_actions, is_root, enabled, created_at FROM access_keys WHERE id = $1',
);

const GET_SOURCE_KEY = prepared('get_source_key', 'SELECT id, key_id, key_sealed FROM sources WHERE key_id = $1');

/** One statement: the code and its count move together. */
const CREATE_TOKEN = prepared(
  'create_token',
  `WITH created AS (${INSERT_ACCESS_TOKEN} RETURNING 1)
   UPDATE access_token_counts SET n = n + (SELECT COUNT(*) FROM created) WHERE shard = $14`,
);

/** INSERT_ACCESS_TOKEN's values ($1-$13), inserted only when the CTE `fresh` has a row (the nonce was new). */
const INSERT_ACCESS_TOKEN_IF_FRESH = `INSERT INTO access_tokens (id, code_sealed, name, description, count, registered_count, ttl_days,
     created_at, expires_at, disabled, ip_address_range, created_by, require_approval)
     SELECT $1::text, $2::text, $3::text, $4::text, $5::integer, $6::integer, $7::integer, $8::bigint, $9::bigint,
       $10::integer, $11::text, $12::text, $13::integer FROM fresh RETURNING 1`;

/**
 * The same with the request's nonce, in one statement and one commit: the code is inserted
 * only when the nonce is fresh (one row from `fresh`), so no row is updated for a replay.
 */
const CREATE_TOKEN_WITH_NONCE = prepared(
  'create_token_nonce',
  `WITH fresh AS (${nonceUpsert(15)} RETURNING 1),
   created AS (${INSERT_ACCESS_TOKEN_IF_FRESH})
   UPDATE access_token_counts SET n = n + 1 WHERE shard = $14 AND EXISTS (SELECT 1 FROM created)`,
);

/** CREATE_TOKEN with the code's AccessToken.Create event (eventCtesSql, from $15), still one statement. */
const CREATE_TOKEN_EVENT = prepared(
  'create_token_event',
  `WITH created AS (${INSERT_ACCESS_TOKEN} RETURNING 1), ${eventCtesSql(15, { guard: 'created' })}
   UPDATE access_token_counts SET n = n + (SELECT COUNT(*) FROM created) WHERE shard = $14`,
);

/** CREATE_TOKEN_WITH_NONCE with the event (from $19), written only when the code is. */
const CREATE_TOKEN_WITH_NONCE_EVENT = prepared(
  'create_token_nonce_event',
  `WITH fresh AS (${nonceUpsert(15)} RETURNING 1),
   created AS (${INSERT_ACCESS_TOKEN_IF_FRESH}), ${eventCtesSql(19, { guard: 'created' })}
   UPDATE access_token_counts SET n = n + 1 WHERE shard = $14 AND EXISTS (SELECT 1 FROM created)`,
);

/** The code's row locked for the import, and the request's nonce recorded, in one round trip. */
const LOCK_TOKEN_WITH_NONCE = `WITH fresh AS (${nonceUpsert(2)} RETURNING 1)
  SELECT (SELECT COUNT(*) FROM fresh) AS nonce_fresh, t.*
  FROM (SELECT 1) AS one LEFT JOIN LATERAL (SELECT * FROM access_tokens WHERE id = $1 FOR UPDATE) AS t ON TRUE`;

const LOCK_SOURCE = prepared('lock_source', 'SELECT id, key_id, key_sealed FROM sources WHERE machine_id = $1 FOR UPDATE');
const TOKEN_USED = prepared('token_used', 'SELECT 1 AS used FROM token_uses WHERE access_token_id = $1 AND machine_id = $2');
const USE_SLOT = prepared('use_slot', 'UPDATE access_tokens SET registered_count = registered_count + 1 WHERE id = $1 AND registered_count < count');
const INSERT_TOKEN_USE = prepared('insert_token_use', 'INSERT INTO token_uses (access_token_id, machine_id, used_at) VALUES ($1, $2, $3)');

/** A batch of heartbeats in one statement: arrays of the values ($1-$4), joined to the rows by id. */
const UPDATE_HEARTBEATS = `UPDATE sources AS s SET last_heartbeat_at = GREATEST(s.last_heartbeat_at, b.at),
     system_info = COALESCE(b.system_info, s.system_info), status_info = COALESCE(b.status_info, s.status_info)
   FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[]) AS b(id, at, system_info, status_info)
   WHERE s.id = b.id`;

/** UPDATE_HEARTBEATS, prepared. */
const RECORD_HEARTBEATS = prepared('record_heartbeats', UPDATE_HEARTBEATS);

/**
 * RECORD_HEARTBEATS answering how many rows it wrote and which of them are marked offline
 * (read from the rows it updated, so current: each is locked by the update).
 */
const RECORD_HEARTBEATS_SEEN = prepared(
  'record_heartbeats_seen',
  `WITH u AS (${UPDATE_HEARTBEATS} RETURNING s.id, s.offline)
   SELECT (SELECT COUNT(*) FROM u) AS n, ARRAY(SELECT id FROM u WHERE offline = 1) AS back`,
);

const INSERT_SOURCE = prepared(
  'insert_source',
  `INSERT INTO sources (id, key_id, key_sealed, access_token_id, machine_id, name, description, hostname,
  platform, architecture, kernel_level, agent_version, system_disk_size, data_disks, system_info, status_info, created_at,
  first_import_at, last_import_at, first_client_ip, last_client_ip, last_heartbeat_at, approval_status)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, '', $16, $16, $16, $17, $17, $16, $18)
  ON CONFLICT (machine_id) DO NOTHING`,
);

const UPDATE_SOURCE_ON_IMPORT = prepared(
  'update_source_on_import',
  `UPDATE sources SET key_sealed = $1, access_token_id = $2, name = COALESCE($3, name),
  description = COALESCE($4, description), hostname = $5, platform = $6, architecture = $7, kernel_level = $8,
  agent_version = $9, system_disk_size = $10, data_disks = $11, system_info = $12, last_import_at = $13,
  last_client_ip = $14, last_heartbeat_at = $13 WHERE id = $15`,
);

const UPSERT_TAG = `INSERT INTO tags (resource_type, resource_id, key, value) VALUES ($1, $2, $3, $4)
  ON CONFLICT (resource_type, resource_id, key) DO UPDATE SET value = EXCLUDED.value`;

/** The table holding each taggable resource type. */
const TABLE_OF: Record<TagResourceType, string> = { sourceserver: 'sources', accesstoken: 'access_tokens' };

/** Ids once each, sorted: rows locked in this order by every batch cannot deadlock. */
const lockOrder = (ids: readonly string[]) => [...new Set(ids)].sort();

/**
 * An event and its webhook deliveries as common table expressions, to put in the statement
 * or transaction of the change they record; their parameters are numbered from `first`.
 * Each subscribed webhook's row gives the delivery its position: the row stays locked until
 * the commit, so a webhook's positions follow the order its events commit in, on every node.
 * With `guard`, the event is written only when that CTE returned rows (the change happened).
 * With `webhookId`, the delivery is queued for that webhook only (ExpiringSoon).
 */
function eventCtes(event: AuditEvent, first: number, opts: { guard?: string; webhookId?: string } = {}): { sql: string; params: unknown[] } {
  return { sql: eventCtesSql(first, { guard: opts.guard, perWebhook: opts.webhookId !== undefined }), params: eventParams(event, opts.webhookId) };
}

/** The text of eventCtes (it does not depend on the event, so statements holding it can be prepared). */
function eventCtesSql(first: number, opts: { guard?: string; perWebhook?: boolean } = {}): string {
  const p = (i: number) => `$${first + i}`;
  const when = opts.guard ? `WHERE EXISTS (SELECT 1 FROM ${opts.guard})` : '';
  const hooks = opts.perWebhook ? `id = ${p(9)}` : `strpos(event_types, ${p(9)}) > 0`;
  return `ev AS (INSERT INTO audit_events (id, event_time, event_type, resource_type, resource_id, actor_key_id, client_ip, request_id, detail)
        SELECT ${p(0)}::text, ${p(1)}::bigint, ${p(2)}::text, ${p(3)}::text, ${p(4)}::text, ${p(5)}::text, ${p(6)}::text, ${p(7)}::text,
          ${p(8)}::text ${when} RETURNING seq, event_time),
      hooks AS (UPDATE webhooks SET next_position = next_position + 1 WHERE ${hooks} AND EXISTS (SELECT 1 FROM ev)
        RETURNING id, next_position),
      queued AS (INSERT INTO webhook_deliveries (webhook_id, position, event_seq, created_at, next_attempt_at)
        SELECT hooks.id, hooks.next_position, ev.seq, ev.event_time, ev.event_time FROM hooks CROSS JOIN ev RETURNING 1)`;
}

/** The ten parameters of eventCtesSql. ExpiringSoon is queued per webhook by its sweep, never to every subscriber at once. */
const eventParams = (event: AuditEvent, webhookId?: string): unknown[] => [
  ...eventValues(event),
  webhookId ?? (event.type === 'AccessToken.ExpiringSoon' ? ',-,' : eventTypesColumn([event.type])),
];

/** Records an event (and queues its deliveries) inside a running transaction. */
async function recordEvent(q: Query, event: AuditEvent, webhookId?: string): Promise<void> {
  const ctes = eventCtes(event, 1, { webhookId });
  await q(`WITH ${ctes.sql} SELECT 1`, ...ctes.params);
}

const heartbeatArrays = (beats: readonly Heartbeat[]) => [
  beats.map((b) => b.sourceId),
  beats.map((b) => b.at),
  beats.map((b) => b.systemInfo ?? null),
  beats.map((b) => b.statusInfo ?? null),
];

const DELIVERY_COLUMNS = `d.*, e.id, e.event_time, e.event_type, e.resource_type, e.resource_id, e.actor_key_id, e.client_ip,
  e.request_id, e.detail`;

/** A WHERE clause and its values, numbered from $1. */
class Where {
  readonly #terms: string[] = [];
  readonly params: unknown[] = [];

  value(v: unknown): string {
    this.params.push(v);
    return `$${this.params.length}`;
  }

  get sql(): string {
    return this.#terms.length ? `WHERE ${this.#terms.join(' AND ')}` : '';
  }

  in(column: string, values: string[]): void {
    if (values.length === 0) this.#terms.push('FALSE');
    else this.#terms.push(`${column} IN (${values.map((v) => this.value(v)).join(', ')})`);
  }

  eq(column: string, v: unknown): void {
    this.#terms.push(`${column} = ${this.value(v)}`);
  }

  raw(term: string): void {
    this.#terms.push(term);
  }

  /** Resources (by `column`) having this tag: an indexed lookup in tags_by_tag. */
  hasTag(column: string, type: TagResourceType, f: TagFilter): void {
    const value = f.value === undefined ? '' : ` AND value = ${this.value(f.value)}`;
    this.#terms.push(`${column} IN (SELECT resource_id FROM tags WHERE resource_type = ${this.value(type)} AND key = ${this.value(f.key)}${value})`);
  }
}

function tokenWhere(q: TokenQuery): Where {
  const w = new Where();
  if (q.ids) w.in('id', q.ids);
  if (q.name !== undefined) w.eq('name', q.name);
  // Each Status as indexed predicates: `closed` (generated: disabled or used up) and the expiry.
  if (q.status === 'expired') w.raw(`expires_at <= ${w.value(q.now)}`);
  else if (q.status === 'unactivated') w.raw(`closed = 1 AND expires_at > ${w.value(q.now)}`);
  else if (q.status === 'activated') w.raw(`closed = 0 AND expires_at > ${w.value(q.now)}`);
  else if (q.status === 'disabled') w.raw(`closed = 1 AND disabled = 1 AND expires_at > ${w.value(q.now)}`);
  for (const f of q.tags ?? []) w.hasTag('id', 'accesstoken', f);
  return w;
}

function sourceWhere(q: SourceQuery): Where {
  const w = new Where();
  if (q.ids) w.in('id', q.ids);
  if (q.name !== undefined) w.eq('name', q.name);
  if (q.accessTokenId !== undefined) w.eq('access_token_id', q.accessTokenId);
  if (q.state === 'Available') w.raw(`last_heartbeat_at >= ${w.value(q.onlineSince)}`);
  else if (q.state === 'Unavailable') w.raw(`last_heartbeat_at < ${w.value(q.onlineSince)}`);
  if (q.approvalStatus !== undefined) w.eq('approval_status', q.approvalStatus);
  for (const f of q.tags ?? []) w.hasTag('id', 'sourceserver', f);
  return w;
}

/** The tag rows of a page's resources: primary-key lookups, at most a page's worth. */
async function tagsOf(q: Query, type: TagResourceType, items: ReadonlyArray<{ id: string }>): Promise<Record<string, unknown>[]> {
  if (items.length === 0) return [];
  return (
    await q(
      'SELECT resource_id, key, value FROM tags WHERE resource_type = $1 AND resource_id = ANY($2::text[])',
      type,
      items.map((i) => i.id),
    )
  ).rows;
}

/** Inside a transaction: locks the rows of these resources (in lockOrder) and names the first missing one. */
async function lockResources(q: Query, type: TagResourceType, ids: readonly string[]): Promise<string | undefined> {
  const found = await q(`SELECT id FROM ${TABLE_OF[type]} WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE`, ids);
  const have = new Set(found.rows.map((r) => String(r.id)));
  return ids.find((id) => !have.has(id));
}

/** Inside an import's transaction: the code's tags onto the source (API.md 5.3). */
async function inheritTags(q: Query, tokenId: string, sourceId: string, created: boolean): Promise<void> {
  const codeTags = (await q("SELECT key, value FROM tags WHERE resource_type = 'accesstoken' AND resource_id = $1", tokenId)).rows.map((r) => ({
    key: String(r.key),
    value: String(r.value),
  }));
  if (codeTags.length === 0) return;
  const have = created
    ? []
    : (await q("SELECT key FROM tags WHERE resource_type = 'sourceserver' AND resource_id = $1", sourceId)).rows.map((r) => String(r.key));
  for (const t of inheritedTags(codeTags, have)) await q(UPSERT_TAG, 'sourceserver', sourceId, t.key, t.value);
}

/** A create with a ClientToken, inside its transaction. */
async function claimAndCreate(
  q: Query,
  token: AccessTokenRecord,
  idem: IdempotencyKey,
  tags: readonly Tag[],
  event: AuditEvent | undefined,
): Promise<CreateTokenOutcome> {
  // The primary key decides between racing nodes: the claim that inserts (or takes
  // over an expired one) creates; the other waits for its commit, then replays it.
  for (let i = 0; i < 3; i++) {
    const claimed = await q(
      `INSERT INTO client_tokens (owner_key_id, client_token, fingerprint, access_token_id, expires_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (owner_key_id, client_token) DO UPDATE SET fingerprint = EXCLUDED.fingerprint,
       access_token_id = EXCLUDED.access_token_id, expires_at = EXCLUDED.expires_at
       WHERE client_tokens.expires_at <= $6`,
      idem.ownerKeyId,
      idem.clientToken,
      idem.fingerprint,
      token.id,
      idem.expiresAt,
      token.createdAt,
    );
    if (claimed.rowCount) {
      await q(INSERT_ACCESS_TOKEN, ...accessTokenValues(token));
      await q('UPDATE access_token_counts SET n = n + 1 WHERE shard = $1', countShard());
      for (const t of tags) await q(UPSERT_TAG, 'accesstoken', token.id, t.key, t.value);
      if (event) await recordEvent(q, event);
      return { outcome: 'created', token };
    }
    const prior = (
      await q(
        'SELECT fingerprint, access_token_id FROM client_tokens WHERE owner_key_id = $1 AND client_token = $2 AND expires_at > $3',
        idem.ownerKeyId,
        idem.clientToken,
        token.createdAt,
      )
    ).rows[0];
    if (prior) {
      return prior.fingerprint === idem.fingerprint ? { outcome: 'replayed', tokenId: String(prior.access_token_id) } : { outcome: 'mismatch' };
    }
    // The live claim was purged between the two statements: claim again.
  }
  throw new Error('ClientToken claim did not settle');
}

/**
 * PostgreSQL, for several nodes on one database. The connection machinery (pool, deadlines,
 * retries) is in connection.ts; this file is the SQL of each operation. Uses are counted
 * exactly under concurrent imports on every node by locking the code's row.
 */
export class PostgresStore implements Store {
  readonly description: string;
  readonly #db: PgConnection;

  private constructor(db: PgConnection, description: string) {
    this.#db = db;
    this.description = description;
  }

  static async open(url: string, opts: PgConnectionOptions = {}): Promise<PostgresStore> {
    const db = new PgConnection(url, opts);
    try {
      await migrate(url, db.timeoutMs);
    } catch (err) {
      await db.close().catch(noop);
      throw isUnavailableError(err) ? new StoreUnavailableError(err) : err;
    }
    return new PostgresStore(db, describePostgresUrl(url));
  }

  async #get(sql: string | Prepared, ...params: unknown[]): Promise<Record<string, unknown> | undefined> {
    return this.#db.op('read', async (q) => (await q(sql, ...params)).rows[0]);
  }

  async #all(sql: string, ...params: unknown[]): Promise<Record<string, unknown>[]> {
    return this.#db.op('read', async (q) => (await q(sql, ...params)).rows);
  }

  async #run(sql: string | Prepared, ...params: unknown[]): Promise<number> {
    return this.#db.op('write', async (q) => (await q(sql, ...params)).rowCount ?? 0);
  }

  /**
   * One statement that changes rows (`change`, with RETURNING 1, its parameters numbered from
   * $1) and records `event` when it changed any; true when it did.
   */
  async #change(event: AuditEvent | undefined, change: string, ...params: unknown[]): Promise<boolean> {
    if (!event) return (await this.#run(change, ...params)) > 0;
    const ctes = eventCtes(event, params.length + 1, { guard: 'changed' });
    const row = await this.#db.op(
      'write',
      async (q) => (await q(`WITH changed AS (${change}), ${ctes.sql} SELECT COUNT(*) AS n FROM changed`, ...params, ...ctes.params)).rows[0],
    );
    return Number(row?.n) > 0;
  }

  close(): Promise<void> {
    return this.#db.close();
  }

  async ping(): Promise<void> {
    await this.#db.op('read', (q) => q('SELECT 1 AS ok'), Math.min(this.#db.timeoutMs, 2_000));
  }

  /** Every write commits before its promise resolves: there are no group commits to report. */
  observe(_observer: StoreObserver): void {}

  /** Every write is durable once its promise resolves, so nothing is ever pending here. */
  settled(): Promise<void> {
    return Promise.resolve();
  }

  async getMeta(key: string): Promise<string | undefined> {
    const row = await this.#get('SELECT value FROM meta WHERE key = $1', key);
    return row ? String(row.value) : undefined;
  }

  async setMeta(key: string, value: string): Promise<void> {
    await this.#run('INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value', key, value);
  }

  async putMetaIfAbsent(key: string, value: string): Promise<string> {
    // Two statements, not one: the SELECT needs a snapshot taken after a concurrent
    // insert it waited for has committed (READ COMMITTED gives each statement its own).
    return this.#db.op('write', async (q) => {
      await q('INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING', key, value);
      return String((await q('SELECT value FROM meta WHERE key = $1', key)).rows[0]?.value);
    });
  }

  async insertAccessKey(key: AccessKeyRecord, event?: AuditEvent): Promise<boolean> {
    return this.#change(
      event,
      `INSERT INTO access_keys (id, secret_sealed, description, allowed_actions, is_root, enabled, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING 1`,
      ...accessKeyValues(key),
    );
  }

  async getRootAccessKey(): Promise<AccessKeyRecord | undefined> {
    const row = await this.#get('SELECT * FROM access_keys WHERE is_root = 1');
    return row && accessKeyFromRow(row);
  }

  async getAccessKey(id: string): Promise<AccessKeyRecord | undefined> {
    const row = await this.#get(GET_ACCESS_KEY, id);
    return row && accessKeyFromRow(row);
  }

  async listAccessKeys(): Promise<AccessKeyRecord[]> {
    return (await this.#all('SELECT * FROM access_keys ORDER BY created_at, id')).map(accessKeyFromRow);
  }

  async setAccessKeyEnabled(id: string, enabled: boolean, event?: AuditEvent): Promise<boolean> {
    return this.#change(event, 'UPDATE access_keys SET enabled = $1 WHERE id = $2 RETURNING 1', enabled ? 1 : 0, id);
  }

  async setAccessKeySecret(id: string, secretSealed: string): Promise<boolean> {
    return (await this.#run('UPDATE access_keys SET secret_sealed = $1 WHERE id = $2', secretSealed, id)) > 0;
  }

  async deleteAccessKey(id: string, event?: AuditEvent): Promise<boolean> {
    return this.#change(event, 'DELETE FROM access_keys WHERE id = $1 RETURNING 1', id);
  }

  async useNonce(keyId: string, nonce: string, now: number, expiresAt: number): Promise<boolean> {
    return (await this.#run(USE_NONCE, keyId, nonce, expiresAt, now)) > 0;
  }

  async purgeExpired(now: number, eventsBefore?: number): Promise<void> {
    await this.#db.op('write', async (q) => {
      await q('DELETE FROM nonces WHERE expires_at <= $1', now);
      await q('DELETE FROM client_tokens WHERE expires_at <= $1', now);
      if (eventsBefore !== undefined) {
        await q('DELETE FROM webhook_deliveries WHERE created_at < $1', eventsBefore);
        await q('DELETE FROM audit_events WHERE event_time < $1', eventsBefore);
      }
    });
  }

  async createAccessToken(token: AccessTokenRecord, idem?: IdempotencyKey, extra: CreateExtras = {}): Promise<CreateTokenOutcome> {
    const { tags = [], nonce, event } = extra;
    if (!idem && tags.length === 0) {
      // One statement: the code and its count move together (and the nonce and the event, when given).
      if (!nonce) {
        if (event) await this.#run(CREATE_TOKEN_EVENT, ...accessTokenValues(token), countShard(), ...eventParams(event));
        else await this.#run(CREATE_TOKEN, ...accessTokenValues(token), countShard());
        return { outcome: 'created', token };
      }
      const created = event
        ? await this.#run(CREATE_TOKEN_WITH_NONCE_EVENT, ...accessTokenValues(token), countShard(), ...nonceValues(nonce), ...eventParams(event))
        : await this.#run(CREATE_TOKEN_WITH_NONCE, ...accessTokenValues(token), countShard(), ...nonceValues(nonce));
      if (created === 0) throw new NonceUsedError();
      nonce.written = true;
      return { outcome: 'created', token };
    }
    return this.#db.op('tx', async (q): Promise<CreateTokenOutcome> => {
      if (nonce && !(await q(USE_NONCE, ...nonceValues(nonce))).rowCount) throw new NonceUsedError();
      let outcome: CreateTokenOutcome;
      if (idem) {
        outcome = await claimAndCreate(q, token, idem, tags, event);
      } else {
        await q(INSERT_ACCESS_TOKEN, ...accessTokenValues(token));
        await q('UPDATE access_token_counts SET n = n + 1 WHERE shard = $1', countShard());
        for (const t of tags) await q(UPSERT_TAG, 'accesstoken', token.id, t.key, t.value);
        if (event) await recordEvent(q, event);
        outcome = { outcome: 'created', token };
      }
      if (nonce) nonce.written = true;
      return outcome;
    });
  }

  async getAccessToken(id: string): Promise<AccessTokenRecord | undefined> {
    const row = await this.#get('SELECT * FROM access_tokens WHERE id = $1', id);
    return row && accessTokenFromRow(row);
  }

  listAccessTokens(query: TokenQuery): Promise<{ total: number; items: Tagged<AccessTokenRecord>[] }> {
    const where = tokenWhere(query);
    const list = async (q: Query) => {
      // Unfiltered, the counter shards answer; a filter counts its matches through its indexes.
      const counted =
        where.sql === ''
          ? await q('SELECT COALESCE(SUM(n), 0) AS n FROM access_token_counts')
          : await q(`SELECT COUNT(*) AS n FROM access_tokens ${where.sql}`, ...where.params);
      const page = where.params.length;
      const rows = await q(
        `SELECT * FROM access_tokens ${where.sql} ORDER BY seq DESC LIMIT $${page + 1} OFFSET $${page + 2}`,
        ...where.params,
        query.limit,
        query.offset,
      );
      const items = rows.rows.map(accessTokenFromRow);
      return { total: Number(counted.rows[0]?.n), items: withTags(items, await tagsOf(q, 'accesstoken', items)) };
    };
    const cheap =
      (where.sql === '' || (query.ids !== undefined && query.name === undefined && query.status === undefined)) && query.offset <= CHEAP_OFFSET;
    return cheap ? this.#db.op('read', list) : this.#db.heavy('read', list);
  }

  async disableAccessToken(id: string, event?: AuditEvent): Promise<boolean> {
    return this.#change(event, 'UPDATE access_tokens SET disabled = 1 WHERE id = $1 RETURNING 1', id);
  }

  async deleteAccessToken(id: string, event?: AuditEvent): Promise<boolean> {
    // The token row first: the same lock order as importSource, so the two cannot deadlock.
    return this.#db.op('tx', async (q) => {
      const deleted = (await q('DELETE FROM access_tokens WHERE id = $1', id)).rowCount ?? 0;
      await q('DELETE FROM token_uses WHERE access_token_id = $1', id);
      await q("DELETE FROM tags WHERE resource_type = 'accesstoken' AND resource_id = $1", id);
      if (deleted > 0) await q('UPDATE access_token_counts SET n = n - 1 WHERE shard = $1', countShard());
      if (deleted > 0 && event) await recordEvent(q, event);
      return deleted > 0;
    });
  }

  async importSource(req: ImportRequest): Promise<ImportOutcome> {
    // The token row lock serialises every import with this code, on every node: the
    // ownership check, the count check, the use record and the increment are one decision.
    // With the request's nonce, the first statement also records it (one round trip, one commit).
    const nonce = req.nonce;
    return this.#db.op('tx', async (q): Promise<ImportOutcome> => {
      const { outcome, events } = await this.#import(q, req);
      if (nonce) nonce.written = true;
      for (const event of events) await recordEvent(q, event);
      return outcome;
    });
  }

  /**
   * The import's decision and its writes, inside the caller's transaction, with the events
   * (req.events) to record in that same transaction: a refusal's too, committed with the
   * nonce although nothing else changes.
   */
  async #import(q: Query, req: ImportRequest): Promise<{ outcome: ImportOutcome; events: AuditEvent[] }> {
    const decided = (outcome: ImportOutcome, exhausted = false) => ({ outcome, events: req.events?.(outcome, exhausted) ?? [] });
    let row: Record<string, unknown> | undefined;
    if (req.nonce) {
      row = (await q(LOCK_TOKEN_WITH_NONCE, req.tokenId, ...nonceValues(req.nonce))).rows[0];
      if (Number(row?.nonce_fresh) === 0) throw new NonceUsedError();
      if (row?.id === null) row = undefined;
    } else {
      row = (await q('SELECT * FROM access_tokens WHERE id = $1 FOR UPDATE', req.tokenId)).rows[0];
    }
    if (!row) return decided({ outcome: 'refused', reason: 'token-gone' });
    const token = accessTokenFromRow(row);
    const refusal = req.refusal(token);
    if (refusal) return decided({ outcome: 'refused', reason: refusal });
    // The machine's source row is locked too: the same machine may be importing with
    // another code (another token lock) at this moment.
    const existing = (await q(LOCK_SOURCE, req.machineId)).rows[0];
    if (existing && !req.ownsSource(ownedSourceFromRow(existing))) {
      return decided({ outcome: 'refused', reason: 'machine-in-use', sourceId: String(existing.id) });
    }
    let exhausted = false;
    const used = Boolean((await q(TOKEN_USED, req.tokenId, req.machineId)).rowCount);
    if (!used) {
      const slot = await q(USE_SLOT, req.tokenId);
      if (!slot.rowCount) return decided({ outcome: 'refused', reason: 'count' });
      // The code's row is locked by this transaction: this use is its last when one was left.
      exhausted = Number(row.registered_count) + 1 === Number(row.count);
      await q(INSERT_TOKEN_USE, req.tokenId, req.machineId, req.now);
    }
    if (existing) {
      const keyId = String(existing.key_id);
      await q(
        UPDATE_SOURCE_ON_IMPORT,
        req.sealKey(keyId),
        req.tokenId,
        ...sourceFieldValues(req.fields, 'update'),
        req.now,
        req.clientIp,
        existing.id,
      );
      if (!used) await inheritTags(q, req.tokenId, String(existing.id), false);
      return decided({ outcome: 'imported', sourceId: String(existing.id), keyId, usedSlot: !used, created: false }, exhausted);
    }
    const inserted = await q(
      INSERT_SOURCE,
      req.newSourceId,
      req.newKeyId,
      req.sealKey(req.newKeyId),
      req.tokenId,
      req.machineId,
      ...sourceFieldValues(req.fields, 'insert'),
      req.now,
      req.clientIp,
      approvalOnCreate(token),
    );
    // Another import created this machine's source since our read: roll back (the slot
    // too) and decide again, now against that source and its owner.
    if (!inserted.rowCount) throw new RetryTransaction();
    await inheritTags(q, req.tokenId, req.newSourceId, true);
    return decided({ outcome: 'imported', sourceId: req.newSourceId, keyId: req.newKeyId, usedSlot: !used, created: true }, exhausted);
  }

  async getSource(id: string): Promise<SourceRecord | undefined> {
    const row = await this.#get('SELECT * FROM sources WHERE id = $1', id);
    return row && sourceFromRow(row);
  }

  async getSourceKey(keyId: string): Promise<OwnedSource | undefined> {
    const row = await this.#get(GET_SOURCE_KEY, keyId);
    return row && ownedSourceFromRow(row);
  }

  async recordHeartbeats(beats: readonly Heartbeat[], online?: (beat: Heartbeat) => AuditEvent): Promise<number> {
    if (beats.length === 0) return 0;
    if (!online) return this.#run(RECORD_HEARTBEATS, ...heartbeatArrays(beats));
    // One statement writes the beats and names those of sources marked offline (their rows are
    // locked by the update, so the flag read is current); only when there are some does a second
    // transaction clear their flags and record their Online events together. A crash between the
    // two leaves the flag set: the next beat clears it and records the event.
    const seen = (await this.#db.op('write', async (q) => (await q(RECORD_HEARTBEATS_SEEN, ...heartbeatArrays(beats))).rows[0])) ?? {};
    const back = (seen.back as string[] | null) ?? [];
    if (back.length > 0) {
      await this.#db.op('tx', async (q) => {
        const cleared = await q('UPDATE sources SET offline = 0 WHERE offline = 1 AND id = ANY($1::text[]) RETURNING id', back);
        const byId = new Map(beats.map((b) => [b.sourceId, b]));
        for (const r of cleared.rows) {
          const beat = byId.get(String(r.id));
          if (beat) await recordEvent(q, online(beat));
        }
      });
    }
    return Number(seen.n ?? 0);
  }

  async markOffline(onlineSince: number, offline: (sourceId: string, lastHeartbeatAt: number) => AuditEvent, limit: number): Promise<number> {
    // Row locks make each source's transition one node's: nodes sweeping at once take disjoint
    // rows (SKIP LOCKED), and the flag, checked again on the locked row, is flipped once.
    return this.#db.op('tx', async (q) => {
      const marked = await q(
        // The CTE is evaluated once (a LIMIT in an IN subquery may be run again, and take more).
        `WITH picked AS (SELECT id FROM sources WHERE offline = 0 AND last_heartbeat_at < $1
           ORDER BY last_heartbeat_at LIMIT $2 FOR UPDATE SKIP LOCKED)
         UPDATE sources AS s SET offline = 1 FROM picked WHERE s.id = picked.id AND s.offline = 0
         RETURNING s.id, s.last_heartbeat_at`,
        onlineSince,
        limit,
      );
      for (const r of marked.rows) await recordEvent(q, offline(String(r.id), Number(r.last_heartbeat_at)));
      return marked.rows.length;
    });
  }

  describeSources(query: SourceQuery): Promise<{ total: number; items: Tagged<SourceRecord>[] }> {
    const where = sourceWhere(query);
    const describe = async (q: Query) => {
      const counted = await q(`SELECT COUNT(*) AS n FROM sources ${where.sql}`, ...where.params);
      const page = where.params.length;
      const rows = await q(
        `SELECT * FROM sources ${where.sql} ORDER BY seq DESC LIMIT $${page + 1} OFFSET $${page + 2}`,
        ...where.params,
        query.limit,
        query.offset,
      );
      const items = rows.rows.map(sourceFromRow);
      return { total: Number(counted.rows[0]?.n), items: withTags(items, await tagsOf(q, 'sourceserver', items)) };
    };
    return query.ids !== undefined && query.offset <= CHEAP_OFFSET ? this.#db.op('read', describe) : this.#db.heavy('read', describe);
  }

  async modifySource(id: string, patch: { name?: string; description?: string }, event?: AuditEvent): Promise<boolean> {
    return this.#change(
      event,
      'UPDATE sources SET name = COALESCE($1, name), description = COALESCE($2, description) WHERE id = $3 RETURNING 1',
      patch.name ?? null,
      patch.description ?? null,
      id,
    );
  }

  async deleteSource(id: string, event?: AuditEvent): Promise<boolean> {
    // The source row first, then its tags: the lock order of tagResources and importSource.
    return this.#db.op('tx', async (q) => {
      const deleted = (await q('DELETE FROM sources WHERE id = $1', id)).rowCount ?? 0;
      await q("DELETE FROM tags WHERE resource_type = 'sourceserver' AND resource_id = $1", id);
      if (deleted > 0 && event) await recordEvent(q, event);
      return deleted > 0;
    });
  }

  async describeEvents(query: EventQuery): Promise<StoredEvent[]> {
    const w = new Where();
    if (query.types) w.in('event_type', query.types);
    if (query.resourceId !== undefined) w.eq('resource_id', query.resourceId);
    if (query.startTime !== undefined) w.raw(`event_time >= ${w.value(query.startTime)}`);
    if (query.endTime !== undefined) w.raw(`event_time <= ${w.value(query.endTime)}`);
    if (query.beforeSeq !== undefined) w.raw(`seq < ${w.value(query.beforeSeq)}`);
    const rows = await this.#db.heavy('read', (q) =>
      q(`SELECT * FROM audit_events ${w.sql} ORDER BY seq DESC LIMIT ${w.value(query.limit)}`, ...w.params),
    );
    return rows.rows.map(eventFromRow);
  }

  async createWebhook(hook: WebhookRecord): Promise<void> {
    await this.#run(
      'INSERT INTO webhooks (id, url, event_types, expiring_soon_days, secret_sealed, created_at) VALUES ($1, $2, $3, $4, $5, $6)',
      hook.id,
      hook.url,
      eventTypesColumn(hook.eventTypes),
      hook.expiringSoonDays,
      hook.secretSealed,
      hook.createdAt,
    );
  }

  async listWebhooks(): Promise<WebhookRecord[]> {
    return (await this.#all('SELECT * FROM webhooks ORDER BY seq DESC')).map(webhookFromRow);
  }

  async getWebhook(id: string): Promise<WebhookRecord | undefined> {
    const row = await this.#get('SELECT * FROM webhooks WHERE id = $1', id);
    return row && webhookFromRow(row);
  }

  async deleteWebhook(id: string): Promise<boolean> {
    return this.#db.op('tx', async (q) => {
      const deleted = (await q('DELETE FROM webhooks WHERE id = $1', id)).rowCount ?? 0;
      await q('DELETE FROM webhook_deliveries WHERE webhook_id = $1', id);
      await q('DELETE FROM expiry_notices WHERE webhook_id = $1', id);
      return deleted > 0;
    });
  }

  approveSources(ids: readonly string[], approved?: (sourceId: string) => AuditEvent): Promise<BatchOutcome> {
    const sorted = lockOrder(ids);
    return this.#db.op('tx', async (q): Promise<BatchOutcome> => {
      const missing = await lockResources(q, 'sourceserver', sorted);
      if (missing !== undefined) return { outcome: 'not-found', id: missing };
      const changed = await q(
        "UPDATE sources SET approval_status = 'Approved' WHERE id = ANY($1::text[]) AND approval_status = 'Pending' RETURNING id",
        sorted,
      );
      if (approved) for (const id of sortedIds(changed.rows)) await recordEvent(q, approved(id));
      return { outcome: 'done' };
    });
  }

  rejectSources(ids: readonly string[], rejected?: (sourceId: string, status: ApprovalStatus) => AuditEvent): Promise<BatchOutcome> {
    const sorted = lockOrder(ids);
    return this.#db.op('tx', async (q): Promise<BatchOutcome> => {
      const missing = await lockResources(q, 'sourceserver', sorted);
      if (missing !== undefined) return { outcome: 'not-found', id: missing };
      await q("DELETE FROM tags WHERE resource_type = 'sourceserver' AND resource_id = ANY($1::text[])", sorted);
      const deleted = await q('DELETE FROM sources WHERE id = ANY($1::text[]) RETURNING id, approval_status', sorted);
      if (rejected) {
        const status = new Map(deleted.rows.map((r) => [String(r.id), String(r.approval_status) as ApprovalStatus]));
        for (const id of sortedIds(deleted.rows)) await recordEvent(q, rejected(id, status.get(id) ?? 'Approved'));
      }
      return { outcome: 'done' };
    });
  }

  tagResources(type: TagResourceType, ids: readonly string[], tags: readonly Tag[], tagged?: (id: string) => AuditEvent): Promise<BatchOutcome> {
    const sorted = lockOrder(ids);
    const keys = tags.map((t) => t.key);
    // The resource rows are locked first, so concurrent tagging of one resource cannot pass the limit together.
    return this.#db.op('tx', async (q): Promise<BatchOutcome> => {
      const missing = await lockResources(q, type, sorted);
      if (missing !== undefined) return { outcome: 'not-found', id: missing };
      const kept = await q(
        `SELECT resource_id, COUNT(*) AS n FROM tags WHERE resource_type = $1 AND resource_id = ANY($2::text[])
         AND NOT (key = ANY($3::text[])) GROUP BY resource_id`,
        type,
        sorted,
        keys,
      );
      const over = kept.rows.find((r) => Number(r.n) + keys.length > MAX_TAGS_PER_RESOURCE);
      if (over) return { outcome: 'too-many-tags', id: String(over.resource_id) };
      await q(
        `INSERT INTO tags (resource_type, resource_id, key, value)
         SELECT $1, r.id, t.key, t.value FROM unnest($2::text[]) AS r(id) CROSS JOIN unnest($3::text[], $4::text[]) AS t(key, value)
         ON CONFLICT (resource_type, resource_id, key) DO UPDATE SET value = EXCLUDED.value`,
        type,
        sorted,
        keys,
        tags.map((t) => t.value),
      );
      if (tagged) for (const id of sorted) await recordEvent(q, tagged(id));
      return { outcome: 'done' };
    });
  }

  untagResources(
    type: TagResourceType,
    ids: readonly string[],
    keys: readonly string[] | 'all',
    untagged?: (id: string, removed: string[]) => AuditEvent,
  ): Promise<BatchOutcome> {
    const sorted = lockOrder(ids);
    return this.#db.op('tx', async (q): Promise<BatchOutcome> => {
      const missing = await lockResources(q, type, sorted);
      if (missing !== undefined) return { outcome: 'not-found', id: missing };
      const removed =
        keys === 'all'
          ? await q('DELETE FROM tags WHERE resource_type = $1 AND resource_id = ANY($2::text[]) RETURNING resource_id, key', type, sorted)
          : await q(
              'DELETE FROM tags WHERE resource_type = $1 AND resource_id = ANY($2::text[]) AND key = ANY($3::text[]) RETURNING resource_id, key',
              type,
              sorted,
              keys,
            );
      if (untagged) for (const [id, lost] of keysById(removed.rows)) await recordEvent(q, untagged(id, lost));
      return { outcome: 'done' };
    });
  }

  async listTagResources(query: TagQuery): Promise<TagRow[]> {
    const w = new Where();
    w.eq('resource_type', query.type);
    if (query.ids) w.in('resource_id', query.ids);
    for (const f of query.tags ?? []) w.hasTag('resource_id', query.type, f);
    if (query.after) w.raw(`(resource_id, key) > (${w.value(query.after.resourceId)}, ${w.value(query.after.key)})`);
    const rows = await this.#all(
      `SELECT resource_id, key, value FROM tags ${w.sql} ORDER BY resource_id, key LIMIT ${w.value(query.limit)}`,
      ...w.params,
    );
    return rows.map((r) => ({ resourceId: String(r.resource_id), key: String(r.key), value: String(r.value) }));
  }

  describeDeliveries(query: DeliveryQuery): Promise<{ total: number; items: DeliveryRecord[] }> {
    const w = new Where();
    w.eq('d.webhook_id', query.webhookId);
    if (query.status) w.eq('d.status', query.status);
    return this.#db.heavy('read', async (q) => {
      const counted = await q(`SELECT COUNT(*) AS n FROM webhook_deliveries d ${w.sql}`, ...w.params);
      const n = w.params.length;
      const rows = await q(
        `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN audit_events e ON e.seq = d.event_seq ${w.sql}
         ORDER BY d.position DESC LIMIT $${n + 1} OFFSET $${n + 2}`,
        ...w.params,
        query.limit,
        query.offset,
      );
      return { total: Number(counted.rows[0]?.n), items: rows.rows.map(deliveryFromRow) };
    });
  }

  async noticeExpiringTokens(now: number, expiring: (tokenId: string, expiresAt: number, days: number) => AuditEvent): Promise<number> {
    const hooks = await this.#all("SELECT id, expiring_soon_days FROM webhooks WHERE strpos(event_types, ',AccessToken.ExpiringSoon,') > 0");
    let queued = 0;
    for (const h of hooks) {
      const days = Number(h.expiring_soon_days);
      // The notice's primary key makes each (webhook, code) one node's: a racing insert waits, then does nothing.
      queued += await this.#db.op('tx', async (q) => {
        const due = await q(
          `INSERT INTO expiry_notices (webhook_id, access_token_id)
             SELECT $1, t.id FROM access_tokens t WHERE t.closed = 0 AND t.expires_at > $2 AND t.expires_at <= $3
           ON CONFLICT DO NOTHING RETURNING access_token_id,
             (SELECT expires_at FROM access_tokens WHERE id = access_token_id) AS expires_at`,
          h.id,
          now,
          now + days * 86_400_000,
        );
        for (const r of due.rows) await recordEvent(q, expiring(String(r.access_token_id), Number(r.expires_at), days), String(h.id));
        return due.rows.length;
      });
    }
    return queued;
  }

  async webhooksDue(now: number, owner: string): Promise<string[]> {
    const rows = await this.#all(
      `SELECT w.id FROM webhooks w WHERE (w.lease_until <= $1 OR w.lease_owner = $2)
       AND (SELECT d.next_attempt_at FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.status = 'pending'
            ORDER BY d.position LIMIT 1) <= $1`,
      now,
      owner,
    );
    return rows.map((r) => String(r.id));
  }

  async leaseWebhook(id: string, owner: string, now: number, until: number): Promise<WebhookRecord | undefined> {
    // One statement: of two nodes racing for a free lease, the second re-checks the row after the first commits and gets nothing.
    const row = await this.#db.op(
      'write',
      async (q) =>
        (
          await q(
            'UPDATE webhooks SET lease_owner = $1, lease_until = $2 WHERE id = $3 AND (lease_until <= $4 OR lease_owner = $1) RETURNING *',
            owner,
            until,
            id,
            now,
          )
        ).rows[0],
    );
    return row && webhookFromRow(row);
  }

  async releaseWebhook(id: string, owner: string): Promise<void> {
    await this.#run('UPDATE webhooks SET lease_until = 0 WHERE id = $1 AND lease_owner = $2', id, owner);
  }

  async nextDelivery(webhookId: string): Promise<DeliveryRecord | undefined> {
    const row = await this.#get(
      `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN audit_events e ON e.seq = d.event_seq
       WHERE d.webhook_id = $1 AND d.status = 'pending' ORDER BY d.position LIMIT 1`,
      webhookId,
    );
    return row && deliveryFromRow(row);
  }

  async recordAttempt(webhookId: string, position: number, r: AttemptResult): Promise<void> {
    await this.#run(
      `UPDATE webhook_deliveries SET attempts = $1, first_attempt_at = $2, last_attempt_at = $3, last_status_code = $4, status = $5,
       next_attempt_at = $6 WHERE webhook_id = $7 AND position = $8 AND status = 'pending'`,
      r.attempts,
      r.firstAttemptAt,
      r.at,
      r.statusCode,
      r.status,
      r.nextAttemptAt,
      webhookId,
      position,
    );
  }

  async resealSecrets(reseal: (sealed: string, recordId: string) => string): Promise<number> {
    // An administrative rewrite of every row: allowed far longer than a request.
    return this.#db.op(
      'tx',
      async (q) => {
        let n = 0;
        for (const r of (await q('SELECT id, secret_sealed FROM access_keys FOR UPDATE')).rows) {
          n +=
            (await q('UPDATE access_keys SET secret_sealed = $1 WHERE id = $2', reseal(String(r.secret_sealed), String(r.id)), r.id)).rowCount ?? 0;
        }
        for (const r of (await q('SELECT id, code_sealed FROM access_tokens FOR UPDATE')).rows) {
          n += (await q('UPDATE access_tokens SET code_sealed = $1 WHERE id = $2', reseal(String(r.code_sealed), String(r.id)), r.id)).rowCount ?? 0;
        }
        for (const r of (await q('SELECT id, key_id, key_sealed FROM sources FOR UPDATE')).rows) {
          n += (await q('UPDATE sources SET key_sealed = $1 WHERE id = $2', reseal(String(r.key_sealed), String(r.key_id)), r.id)).rowCount ?? 0;
        }
        for (const r of (await q('SELECT id, secret_sealed FROM webhooks FOR UPDATE')).rows) {
          n += (await q('UPDATE webhooks SET secret_sealed = $1 WHERE id = $2', reseal(String(r.secret_sealed), String(r.id)), r.id)).rowCount ?? 0;
        }
        return n;
      },
      Math.max(this.#db.timeoutMs, 600_000),
    );
  }
}
