import type { AccessKeyRecord } from '../../domain/access-key.ts';
import { type AccessTokenRecord, approvalOnCreate } from '../../domain/access-token.ts';
import type { OwnedSource, SourceRecord } from '../../domain/source-server.ts';
import { inheritedTags, MAX_TAGS_PER_RESOURCE, type Tag, type TagFilter, type TagResourceType } from '../../domain/tags.ts';
import {
  accessKeyFromRow,
  accessKeyValues,
  accessTokenFromRow,
  accessTokenValues,
  ownedSourceFromRow,
  sourceFieldValues,
  sourceFromRow,
  withTags,
} from '../rows.ts';
import {
  type BatchOutcome,
  type CreateExtras,
  type CreateTokenOutcome,
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

/**
 * The same with the request's nonce, in one statement and one commit: the code is inserted
 * only when the nonce is fresh (one row from `fresh`), so no row is updated for a replay.
 */
const CREATE_TOKEN_WITH_NONCE = prepared(
  'create_token_nonce',
  `WITH fresh AS (${nonceUpsert(15)} RETURNING 1),
   created AS (INSERT INTO access_tokens (id, code_sealed, name, description, count, registered_count, ttl_days,
     created_at, expires_at, disabled, ip_address_range, created_by, require_approval)
     SELECT $1::text, $2::text, $3::text, $4::text, $5::integer, $6::integer, $7::integer, $8::bigint, $9::bigint,
       $10::integer, $11::text, $12::text, $13::integer FROM fresh RETURNING 1)
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

/** A batch of heartbeats in one statement: arrays of the values, joined to the rows by id. */
const RECORD_HEARTBEATS = prepared(
  'record_heartbeats',
  `UPDATE sources AS s SET last_heartbeat_at = GREATEST(s.last_heartbeat_at, b.at),
     system_info = COALESCE(b.system_info, s.system_info), status_info = COALESCE(b.status_info, s.status_info)
   FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[]) AS b(id, at, system_info, status_info)
   WHERE s.id = b.id`,
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
async function claimAndCreate(q: Query, token: AccessTokenRecord, idem: IdempotencyKey, tags: readonly Tag[]): Promise<CreateTokenOutcome> {
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

  async insertAccessKey(key: AccessKeyRecord): Promise<boolean> {
    const inserted = await this.#run(
      `INSERT INTO access_keys (id, secret_sealed, description, allowed_actions, is_root, enabled, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
      ...accessKeyValues(key),
    );
    return inserted > 0;
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

  async setAccessKeyEnabled(id: string, enabled: boolean): Promise<boolean> {
    return (await this.#run('UPDATE access_keys SET enabled = $1 WHERE id = $2', enabled ? 1 : 0, id)) > 0;
  }

  async setAccessKeySecret(id: string, secretSealed: string): Promise<boolean> {
    return (await this.#run('UPDATE access_keys SET secret_sealed = $1 WHERE id = $2', secretSealed, id)) > 0;
  }

  async deleteAccessKey(id: string): Promise<boolean> {
    return (await this.#run('DELETE FROM access_keys WHERE id = $1', id)) > 0;
  }

  async useNonce(keyId: string, nonce: string, now: number, expiresAt: number): Promise<boolean> {
    return (await this.#run(USE_NONCE, keyId, nonce, expiresAt, now)) > 0;
  }

  async purgeExpired(now: number): Promise<void> {
    await this.#db.op('write', async (q) => {
      await q('DELETE FROM nonces WHERE expires_at <= $1', now);
      await q('DELETE FROM client_tokens WHERE expires_at <= $1', now);
    });
  }

  async createAccessToken(token: AccessTokenRecord, idem?: IdempotencyKey, extra: CreateExtras = {}): Promise<CreateTokenOutcome> {
    const { tags = [], nonce } = extra;
    if (!idem && tags.length === 0) {
      // One statement: the code and its count move together (and the nonce, when given).
      if (!nonce) {
        await this.#run(CREATE_TOKEN, ...accessTokenValues(token), countShard());
        return { outcome: 'created', token };
      }
      const created = await this.#run(CREATE_TOKEN_WITH_NONCE, ...accessTokenValues(token), countShard(), ...nonceValues(nonce));
      if (created === 0) throw new NonceUsedError();
      nonce.written = true;
      return { outcome: 'created', token };
    }
    return this.#db.op('tx', async (q): Promise<CreateTokenOutcome> => {
      if (nonce && !(await q(USE_NONCE, ...nonceValues(nonce))).rowCount) throw new NonceUsedError();
      let outcome: CreateTokenOutcome;
      if (idem) {
        outcome = await claimAndCreate(q, token, idem, tags);
      } else {
        await q(INSERT_ACCESS_TOKEN, ...accessTokenValues(token));
        await q('UPDATE access_token_counts SET n = n + 1 WHERE shard = $1', countShard());
        for (const t of tags) await q(UPSERT_TAG, 'accesstoken', token.id, t.key, t.value);
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

  async disableAccessToken(id: string): Promise<boolean> {
    return (await this.#run('UPDATE access_tokens SET disabled = 1 WHERE id = $1', id)) > 0;
  }

  async deleteAccessToken(id: string): Promise<boolean> {
    // The token row first: the same lock order as importSource, so the two cannot deadlock.
    return this.#db.op('tx', async (q) => {
      const deleted = (await q('DELETE FROM access_tokens WHERE id = $1', id)).rowCount ?? 0;
      await q('DELETE FROM token_uses WHERE access_token_id = $1', id);
      await q("DELETE FROM tags WHERE resource_type = 'accesstoken' AND resource_id = $1", id);
      if (deleted > 0) await q('UPDATE access_token_counts SET n = n - 1 WHERE shard = $1', countShard());
      return deleted > 0;
    });
  }

  async importSource(req: ImportRequest): Promise<ImportOutcome> {
    // The token row lock serialises every import with this code, on every node: the
    // ownership check, the count check, the use record and the increment are one decision.
    // With the request's nonce, the first statement also records it (one round trip, one commit).
    const nonce = req.nonce;
    return this.#db.op('tx', async (q): Promise<ImportOutcome> => {
      const outcome = await this.#import(q, req);
      if (nonce) nonce.written = true;
      return outcome;
    });
  }

  async #import(q: Query, req: ImportRequest): Promise<ImportOutcome> {
    let row: Record<string, unknown> | undefined;
    if (req.nonce) {
      row = (await q(LOCK_TOKEN_WITH_NONCE, req.tokenId, ...nonceValues(req.nonce))).rows[0];
      if (Number(row?.nonce_fresh) === 0) throw new NonceUsedError();
      if (row?.id === null) row = undefined;
    } else {
      row = (await q('SELECT * FROM access_tokens WHERE id = $1 FOR UPDATE', req.tokenId)).rows[0];
    }
    if (!row) return { outcome: 'refused', reason: 'token-gone' };
    const token = accessTokenFromRow(row);
    const refusal = req.refusal(token);
    if (refusal) return { outcome: 'refused', reason: refusal };
    // The machine's source row is locked too: the same machine may be importing with
    // another code (another token lock) at this moment.
    const existing = (await q(LOCK_SOURCE, req.machineId)).rows[0];
    if (existing && !req.ownsSource(ownedSourceFromRow(existing))) {
      return { outcome: 'refused', reason: 'machine-in-use', sourceId: String(existing.id) };
    }
    const used = Boolean((await q(TOKEN_USED, req.tokenId, req.machineId)).rowCount);
    if (!used) {
      const slot = await q(USE_SLOT, req.tokenId);
      if (!slot.rowCount) return { outcome: 'refused', reason: 'count' };
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
      return { outcome: 'imported', sourceId: String(existing.id), keyId, usedSlot: !used, created: false };
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
    return { outcome: 'imported', sourceId: req.newSourceId, keyId: req.newKeyId, usedSlot: !used, created: true };
  }

  async getSource(id: string): Promise<SourceRecord | undefined> {
    const row = await this.#get('SELECT * FROM sources WHERE id = $1', id);
    return row && sourceFromRow(row);
  }

  async getSourceKey(keyId: string): Promise<OwnedSource | undefined> {
    const row = await this.#get(GET_SOURCE_KEY, keyId);
    return row && ownedSourceFromRow(row);
  }

  async recordHeartbeats(beats: readonly Heartbeat[]): Promise<number> {
    if (beats.length === 0) return 0;
    return this.#run(
      RECORD_HEARTBEATS,
      beats.map((b) => b.sourceId),
      beats.map((b) => b.at),
      beats.map((b) => b.systemInfo ?? null),
      beats.map((b) => b.statusInfo ?? null),
    );
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

  async modifySource(id: string, patch: { name?: string; description?: string }): Promise<boolean> {
    const changed = await this.#run(
      'UPDATE sources SET name = COALESCE($1, name), description = COALESCE($2, description) WHERE id = $3',
      patch.name ?? null,
      patch.description ?? null,
      id,
    );
    return changed > 0;
  }

  async deleteSource(id: string): Promise<boolean> {
    // The source row first, then its tags: the lock order of tagResources and importSource.
    return this.#db.op('tx', async (q) => {
      const deleted = (await q('DELETE FROM sources WHERE id = $1', id)).rowCount ?? 0;
      await q("DELETE FROM tags WHERE resource_type = 'sourceserver' AND resource_id = $1", id);
      return deleted > 0;
    });
  }

  approveSources(ids: readonly string[]): Promise<BatchOutcome> {
    const sorted = lockOrder(ids);
    return this.#db.op('tx', async (q): Promise<BatchOutcome> => {
      const missing = await lockResources(q, 'sourceserver', sorted);
      if (missing !== undefined) return { outcome: 'not-found', id: missing };
      await q("UPDATE sources SET approval_status = 'Approved' WHERE id = ANY($1::text[]) AND approval_status = 'Pending'", sorted);
      return { outcome: 'done' };
    });
  }

  rejectSources(ids: readonly string[]): Promise<BatchOutcome> {
    const sorted = lockOrder(ids);
    return this.#db.op('tx', async (q): Promise<BatchOutcome> => {
      const missing = await lockResources(q, 'sourceserver', sorted);
      if (missing !== undefined) return { outcome: 'not-found', id: missing };
      await q("DELETE FROM tags WHERE resource_type = 'sourceserver' AND resource_id = ANY($1::text[])", sorted);
      await q('DELETE FROM sources WHERE id = ANY($1::text[])', sorted);
      return { outcome: 'done' };
    });
  }

  tagResources(type: TagResourceType, ids: readonly string[], tags: readonly Tag[]): Promise<BatchOutcome> {
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
      return { outcome: 'done' };
    });
  }

  untagResources(type: TagResourceType, ids: readonly string[], keys: readonly string[] | 'all'): Promise<BatchOutcome> {
    const sorted = lockOrder(ids);
    return this.#db.op('tx', async (q): Promise<BatchOutcome> => {
      const missing = await lockResources(q, type, sorted);
      if (missing !== undefined) return { outcome: 'not-found', id: missing };
      if (keys === 'all') await q('DELETE FROM tags WHERE resource_type = $1 AND resource_id = ANY($2::text[])', type, sorted);
      else await q('DELETE FROM tags WHERE resource_type = $1 AND resource_id = ANY($2::text[]) AND key = ANY($3::text[])', type, sorted, keys);
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
        return n;
      },
      Math.max(this.#db.timeoutMs, 600_000),
    );
  }
}
