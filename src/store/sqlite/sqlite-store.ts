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
import type {
  BatchOutcome,
  CreateExtras,
  CreateTokenOutcome,
  DeliveryQuery,
  Heartbeat,
  IdempotencyKey,
  ImportOutcome,
  ImportRequest,
  NonceUse,
  SourceQuery,
  Store,
  StoreObserver,
  Tagged,
  TagQuery,
  TagRow,
  TokenQuery,
} from '../store.ts';
import { NonceUsedError } from '../store.ts';
import { type Row, SqliteConnection } from './connection.ts';
import { SqliteReadPool } from './read-pool.ts';

/** Pages up to this offset of an unfiltered list are cheap enough for the event loop. */
const CHEAP_OFFSET = 1_000;

const INSERT_ACCESS_TOKEN = `INSERT INTO access_tokens (id, code_sealed, name, description, count, registered_count, ttl_days,
  created_at, expires_at, disabled, ip_address_range, created_by, require_approval) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

const INSERT_SOURCE = `INSERT INTO sources (id, key_id, key_sealed, access_token_id, machine_id, name, description, hostname,
  platform, architecture, kernel_level, agent_version, system_disk_size, data_disks, system_info, status_info, created_at,
  first_import_at, last_import_at, first_client_ip, last_client_ip, last_heartbeat_at, approval_status)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?, ?, ?, ?, ?, ?)`;

const UPSERT_TAG = `INSERT INTO tags (resource_type, resource_id, key, value) VALUES (?, ?, ?, ?)
  ON CONFLICT (resource_type, resource_id, key) DO UPDATE SET value = excluded.value`;

/** The table holding each taggable resource type. */
const TABLE_OF: Record<TagResourceType, string> = { sourceserver: 'sources', accesstoken: 'access_tokens' };

const UPDATE_SOURCE_ON_IMPORT = `UPDATE sources SET key_sealed = ?, access_token_id = ?, name = COALESCE(?, name),
  description = COALESCE(?, description), hostname = ?, platform = ?, architecture = ?, kernel_level = ?,
  agent_version = ?, system_disk_size = ?, data_disks = ?, system_info = ?, last_import_at = ?,
  last_client_ip = ?, last_heartbeat_at = ? WHERE id = ?`;

/** One statement; the trigger audit_events_fan_out queues the event's webhook deliveries. */
const INSERT_EVENT = `INSERT INTO audit_events (id, event_time, event_type, resource_type, resource_id, actor_key_id, client_ip,
  request_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`;

const DELIVERY_COLUMNS = `d.*, e.id, e.event_time, e.event_type, e.resource_type, e.resource_id, e.actor_key_id, e.client_ip,
  e.request_id, e.detail`;

interface Where {
  sql: string;
  params: unknown[];
}

function where(terms: Array<[string, ...unknown[]] | undefined>): Where {
  const used = terms.filter((t): t is [string, ...unknown[]] => t !== undefined);
  return { sql: used.length ? `WHERE ${used.map(([sql]) => sql).join(' AND ')}` : '', params: used.flatMap(([, ...p]) => p) };
}

const inList = (column: string, values: readonly string[]): [string, ...unknown[]] =>
  values.length === 0 ? ['0'] : [`${column} IN (${values.map(() => '?').join(', ')})`, ...values];

/** Resources (by `column`) having this tag: an indexed lookup in tags_by_tag. */
const hasTag = (column: string, type: TagResourceType, f: TagFilter): [string, ...unknown[]] =>
  f.value === undefined
    ? [`${column} IN (SELECT resource_id FROM tags WHERE resource_type = ? AND key = ?)`, type, f.key]
    : [`${column} IN (SELECT resource_id FROM tags WHERE resource_type = ? AND key = ? AND value = ?)`, type, f.key, f.value];

const placeholders = (n: number) => Array.from({ length: n }, () => '?').join(', ');

function tokenWhere(q: TokenQuery): Where {
  return where([
    q.ids ? inList('id', q.ids) : undefined,
    q.name !== undefined ? ['name = ?', q.name] : undefined,
    // Each Status as indexed predicates: `closed` (generated: disabled or used up) and the expiry.
    q.status === 'expired' ? ['expires_at <= ?', q.now] : undefined,
    q.status === 'unactivated' ? ['closed = 1 AND expires_at > ?', q.now] : undefined,
    q.status === 'activated' ? ['closed = 0 AND expires_at > ?', q.now] : undefined,
    q.status === 'disabled' ? ['closed = 1 AND disabled = 1 AND expires_at > ?', q.now] : undefined,
    ...(q.tags ?? []).map((f) => hasTag('id', 'accesstoken', f)),
  ]);
}

function sourceWhere(q: SourceQuery): Where {
  return where([
    q.ids ? inList('id', q.ids) : undefined,
    q.name !== undefined ? ['name = ?', q.name] : undefined,
    q.accessTokenId !== undefined ? ['access_token_id = ?', q.accessTokenId] : undefined,
    q.state === 'Available' ? ['last_heartbeat_at >= ?', q.onlineSince] : undefined,
    q.state === 'Unavailable' ? ['last_heartbeat_at < ?', q.onlineSince] : undefined,
    q.approvalStatus !== undefined ? ['approval_status = ?', q.approvalStatus] : undefined,
    ...(q.tags ?? []).map((f) => hasTag('id', 'sourceserver', f)),
  ]);
}

/**
 * The embedded store: one connection with group commit (connection.ts) for writes and
 * cheap reads, and a read worker (read-pool.ts) for lists whose cost grows with the data.
 */
const UPSERT_NONCE = `INSERT INTO nonces (key_id, nonce, expires_at) VALUES (?, ?, ?)
  ON CONFLICT (key_id, nonce) DO UPDATE SET expires_at = excluded.expires_at WHERE nonces.expires_at <= ?`;
/**
 * Rows per write when many are written at once (a flush of heartbeat times): each write holds the
 * event loop for about 2 ms. At 500 rows a chunk held it for about 10 ms, and the heartbeat's p99
 * at half its max rate was 28-33 ms against 17-19 ms at 100 (alternated runs, when heartbeat
 * nonces were written in such chunks too; bench/README.md).
 */
const WRITE_CHUNK = 100;
/** Lets waiting requests run between two chunks of a long write. */
const yieldToRequests = () => new Promise<void>((resolve) => setImmediate(resolve));

export class SqliteStore implements Store {
  readonly description: string;
  readonly #db: SqliteConnection;
  /** None for an in-memory database, which another thread cannot open. */
  readonly #reads?: SqliteReadPool;

  constructor(path: string, options: { timeoutMs?: number } = {}) {
    this.description = `sqlite:${path}`;
    this.#db = new SqliteConnection(path);
    if (path !== ':memory:') this.#reads = new SqliteReadPool(path, { timeoutMs: options.timeoutMs ?? 5_000, maxQueued: 256 });
  }

  /** Records an event inside the running write, when there is one. */
  #event(event: AuditEvent | undefined): void {
    if (event) this.#db.run(INSERT_EVENT, ...eventValues(event));
  }

  /** A write that changes rows with one statement and records `event` when it changed any. */
  #change(event: AuditEvent | undefined, sql: string, ...params: unknown[]): Promise<boolean> {
    return this.#db.write(() => {
      const changed = this.#db.run(sql, ...params) > 0;
      if (changed) this.#event(event);
      return changed;
    }, event === undefined);
  }

  async close(): Promise<void> {
    await this.#reads?.close();
    await this.#db.close();
  }

  async ping(): Promise<void> {
    this.#db.get('SELECT 1 AS ok');
  }

  observe(observer: StoreObserver): void {
    this.#db.observer = observer;
  }

  settled(): Promise<void> {
    return this.#db.settled();
  }

  async getMeta(key: string): Promise<string | undefined> {
    const row = this.#db.get('SELECT value FROM meta WHERE key = ?', key);
    return row ? String(row.value) : undefined;
  }

  setMeta(key: string, value: string): Promise<void> {
    return this.#db.write(() => {
      this.#db.run('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value', key, value);
    }, true);
  }

  putMetaIfAbsent(key: string, value: string): Promise<string> {
    return this.#db.write(() => {
      this.#db.run('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING', key, value);
      return String(this.#db.get('SELECT value FROM meta WHERE key = ?', key)?.value);
    });
  }

  insertAccessKey(key: AccessKeyRecord, event?: AuditEvent): Promise<boolean> {
    return this.#change(
      event,
      `INSERT INTO access_keys (id, secret_sealed, description, allowed_actions, is_root, enabled, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      ...accessKeyValues(key),
    );
  }

  async getRootAccessKey(): Promise<AccessKeyRecord | undefined> {
    const row = this.#db.get('SELECT * FROM access_keys WHERE is_root = 1');
    return row && accessKeyFromRow(row);
  }

  async getAccessKey(id: string): Promise<AccessKeyRecord | undefined> {
    const row = this.#db.get('SELECT * FROM access_keys WHERE id = ?', id);
    return row && accessKeyFromRow(row);
  }

  async listAccessKeys(): Promise<AccessKeyRecord[]> {
    return this.#db.all('SELECT * FROM access_keys ORDER BY created_at, id').map(accessKeyFromRow);
  }

  setAccessKeyEnabled(id: string, enabled: boolean, event?: AuditEvent): Promise<boolean> {
    return this.#change(event, 'UPDATE access_keys SET enabled = ? WHERE id = ?', enabled ? 1 : 0, id);
  }

  setAccessKeySecret(id: string, secretSealed: string): Promise<boolean> {
    return this.#db.write(() => this.#db.run('UPDATE access_keys SET secret_sealed = ? WHERE id = ?', secretSealed, id) > 0, true);
  }

  deleteAccessKey(id: string, event?: AuditEvent): Promise<boolean> {
    return this.#change(event, 'DELETE FROM access_keys WHERE id = ?', id);
  }

  /**
   * Answered at once, before the nonce is on disk: it is in the open transaction, so the
   * request's own write joins the same commit (one fsync per request instead of two). The
   * caller awaits settled() before it answers.
   */
  async useNonce(keyId: string, nonce: string, now: number, expiresAt: number, mayLag = false): Promise<boolean> {
    // A heartbeat's nonce may lag (API.md 5.1): it joins the turn's group commit like any
    // other, but that commit need not be fsynced for it, and its request does not wait for it.
    return this.#claimNonce(keyId, nonce, now, expiresAt, !mayLag);
  }

  #claimNonce(keyId: string, nonce: string, now: number, expiresAt: number, durable = true): boolean {
    // One statement: a live row refuses; an expired row for the same nonce is taken over, not a replay.
    const { value } = this.#db.execute(() => this.#db.run(UPSERT_NONCE, keyId, nonce, expiresAt, now) > 0, true, durable);
    return value;
  }

  purgeExpired(now: number, eventsBefore?: number): Promise<void> {
    return this.#db.write(() => {
      this.#db.run('DELETE FROM nonces WHERE expires_at <= ?', now);
      this.#db.run('DELETE FROM client_tokens WHERE expires_at <= ?', now);
      if (eventsBefore !== undefined) {
        this.#db.run('DELETE FROM webhook_deliveries WHERE created_at < ?', eventsBefore);
        this.#db.run('DELETE FROM audit_events WHERE event_time < ?', eventsBefore);
      }
    });
  }

  /**
   * A write's NonceUse: recorded in the open transaction just before the write, as useNonce
   * does, so both commit together; a failing write does not take it back (as with useNonce).
   */
  #nonceBefore(use: NonceUse | undefined): void {
    if (!use) return;
    if (!this.#claimNonce(use.keyId, use.nonce, use.now, use.expiresAt)) throw new NonceUsedError();
    use.written = true;
  }

  createAccessToken(token: AccessTokenRecord, idem?: IdempotencyKey, extra: CreateExtras = {}): Promise<CreateTokenOutcome> {
    const { tags = [], nonce, event } = extra;
    try {
      this.#nonceBefore(nonce);
    } catch (err) {
      return Promise.reject(err);
    }
    if (!idem) {
      return this.#db.write(
        (): CreateTokenOutcome => {
          this.#db.run(INSERT_ACCESS_TOKEN, ...accessTokenValues(token));
          for (const t of tags) this.#db.run(UPSERT_TAG, 'accesstoken', token.id, t.key, t.value);
          this.#event(event);
          return { outcome: 'created', token };
        },
        tags.length === 0 && event === undefined,
      );
    }
    return this.#db.write((): CreateTokenOutcome => {
      const prior = this.#db.get(
        'SELECT fingerprint, access_token_id FROM client_tokens WHERE owner_key_id = ? AND client_token = ? AND expires_at > ?',
        idem.ownerKeyId,
        idem.clientToken,
        token.createdAt,
      );
      if (prior) {
        return prior.fingerprint === idem.fingerprint ? { outcome: 'replayed', tokenId: String(prior.access_token_id) } : { outcome: 'mismatch' };
      }
      this.#db.run(
        `INSERT INTO client_tokens (owner_key_id, client_token, fingerprint, access_token_id, expires_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (owner_key_id, client_token) DO UPDATE SET fingerprint = excluded.fingerprint,
         access_token_id = excluded.access_token_id, expires_at = excluded.expires_at`,
        idem.ownerKeyId,
        idem.clientToken,
        idem.fingerprint,
        token.id,
        idem.expiresAt,
      );
      this.#db.run(INSERT_ACCESS_TOKEN, ...accessTokenValues(token));
      for (const t of tags) this.#db.run(UPSERT_TAG, 'accesstoken', token.id, t.key, t.value);
      this.#event(event);
      return { outcome: 'created', token };
    });
  }

  async getAccessToken(id: string): Promise<AccessTokenRecord | undefined> {
    const row = this.#db.get('SELECT * FROM access_tokens WHERE id = ?', id);
    return row && accessTokenFromRow(row);
  }

  async listAccessTokens(q: TokenQuery): Promise<{ total: number; items: Tagged<AccessTokenRecord>[] }> {
    const w = tokenWhere(q);
    const count =
      w.sql === ''
        ? { sql: 'SELECT n FROM access_token_count WHERE one = 1', params: [] }
        : { sql: `SELECT COUNT(*) AS n FROM access_tokens ${w.sql}`, params: w.params };
    // The page follows one index the planner might not pick without statistics: a Status
    // walks (closed, seq) newest first; `expired` walks the table newest first.
    const table =
      q.ids || q.name !== undefined
        ? 'access_tokens'
        : q.status === 'expired'
          ? 'access_tokens NOT INDEXED'
          : q.status
            ? 'access_tokens INDEXED BY access_tokens_closed_seq'
            : 'access_tokens';
    const page = { sql: `SELECT * FROM ${table} ${w.sql} ORDER BY seq DESC LIMIT ? OFFSET ?`, params: [...w.params, q.limit, q.offset] };
    // Unfiltered (the trigger-kept counter) or a list of ids, a page is cheap enough for the
    // event loop; a filter's count grows with its matches, so the read worker runs it.
    const cheap = (w.sql === '' || (q.ids !== undefined && q.name === undefined && q.status === undefined)) && q.offset <= CHEAP_OFFSET;
    const [counted, rows] = await this.#read(cheap, [count, page]);
    const items = (rows ?? []).map(accessTokenFromRow);
    return { total: Number(counted?.[0]?.n), items: withTags(items, this.#tagsOf('accesstoken', items)) };
  }

  disableAccessToken(id: string, event?: AuditEvent): Promise<boolean> {
    return this.#change(event, 'UPDATE access_tokens SET disabled = 1 WHERE id = ?', id);
  }

  deleteAccessToken(id: string, event?: AuditEvent): Promise<boolean> {
    return this.#db.write(() => {
      this.#db.run('DELETE FROM token_uses WHERE access_token_id = ?', id);
      this.#db.run("DELETE FROM tags WHERE resource_type = 'accesstoken' AND resource_id = ?", id);
      const deleted = this.#db.run('DELETE FROM access_tokens WHERE id = ?', id) > 0;
      if (deleted) this.#event(event);
      return deleted;
    });
  }

  importSource(req: ImportRequest): Promise<ImportOutcome> {
    try {
      this.#nonceBefore(req.nonce);
    } catch (err) {
      return Promise.reject(err);
    }
    // Runs inside the group-commit transaction, which holds SQLite's write lock:
    // no other writer, in this process or another, interleaves.
    return this.#db.write((): ImportOutcome => {
      let exhausted = false;
      const outcome = this.#decideImport(req, () => {
        exhausted = true;
      });
      for (const event of req.events?.(outcome, exhausted) ?? []) this.#event(event);
      return outcome;
    });
  }

  /** The import's decision and its writes, inside the caller's write; `tookLast` is called when it used the code's last slot. */
  #decideImport(req: ImportRequest, tookLast: () => void): ImportOutcome {
    const row = this.#db.get('SELECT * FROM access_tokens WHERE id = ?', req.tokenId);
    if (!row) return { outcome: 'refused', reason: 'token-gone' };
    const token = accessTokenFromRow(row);
    const refusal = req.refusal(token);
    if (refusal) return { outcome: 'refused', reason: refusal };
    const existing = this.#db.get('SELECT id, key_id, key_sealed FROM sources WHERE machine_id = ?', req.machineId);
    if (existing && !req.ownsSource(ownedSourceFromRow(existing))) {
      return { outcome: 'refused', reason: 'machine-in-use', sourceId: String(existing.id) };
    }
    const used = this.#db.get('SELECT 1 AS used FROM token_uses WHERE access_token_id = ? AND machine_id = ?', req.tokenId, req.machineId);
    if (!used) {
      const slot = this.#db.run(
        'UPDATE access_tokens SET registered_count = registered_count + 1 WHERE id = ? AND registered_count < count',
        req.tokenId,
      );
      if (slot === 0) return { outcome: 'refused', reason: 'count' };
      // The code's row was read under this write's lock: this use is its last when one was left.
      if (Number(row.registered_count) + 1 === Number(row.count)) tookLast();
      this.#db.run('INSERT INTO token_uses (access_token_id, machine_id, used_at) VALUES (?, ?, ?)', req.tokenId, req.machineId, req.now);
    }
    if (existing) {
      const keyId = String(existing.key_id);
      this.#db.run(
        UPDATE_SOURCE_ON_IMPORT,
        req.sealKey(keyId),
        req.tokenId,
        ...sourceFieldValues(req.fields, 'update'),
        req.now,
        req.clientIp,
        req.now,
        existing.id,
      );
      if (!used) this.#inheritTags(req.tokenId, String(existing.id), false);
      return { outcome: 'imported', sourceId: String(existing.id), keyId, usedSlot: !used, created: false };
    }
    this.#db.run(
      INSERT_SOURCE,
      req.newSourceId,
      req.newKeyId,
      req.sealKey(req.newKeyId),
      req.tokenId,
      req.machineId,
      ...sourceFieldValues(req.fields, 'insert'),
      req.now, // created_at
      req.now, // first_import_at
      req.now, // last_import_at
      req.clientIp, // first_client_ip
      req.clientIp, // last_client_ip
      req.now, // last_heartbeat_at
      approvalOnCreate(token),
    );
    this.#inheritTags(req.tokenId, req.newSourceId, true);
    return { outcome: 'imported', sourceId: req.newSourceId, keyId: req.newKeyId, usedSlot: !used, created: true };
  }

  /** Inside an import's write: the code's tags onto the source (API.md 5.3). */
  #inheritTags(tokenId: string, sourceId: string, created: boolean): void {
    const codeTags = this.#db
      .all("SELECT key, value FROM tags WHERE resource_type = 'accesstoken' AND resource_id = ?", tokenId)
      .map((r) => ({ key: String(r.key), value: String(r.value) }));
    if (codeTags.length === 0) return;
    const have = created
      ? []
      : this.#db.all("SELECT key FROM tags WHERE resource_type = 'sourceserver' AND resource_id = ?", sourceId).map((r) => String(r.key));
    for (const t of inheritedTags(codeTags, have)) this.#db.run(UPSERT_TAG, 'sourceserver', sourceId, t.key, t.value);
  }

  /** The tag rows of a page's resources: primary-key lookups, at most a page's worth. */
  #tagsOf(type: TagResourceType, items: ReadonlyArray<{ id: string }>): Row[] {
    if (items.length === 0) return [];
    return this.#db.all(
      `SELECT resource_id, key, value FROM tags WHERE resource_type = ? AND resource_id IN (${placeholders(items.length)})`,
      type,
      ...items.map((i) => i.id),
    );
  }

  /** Inside a write: the first of `ids` that is not a resource of this type. */
  #firstMissing(type: TagResourceType, ids: readonly string[]): string | undefined {
    return ids.find((id) => !this.#db.get(`SELECT 1 AS found FROM ${TABLE_OF[type]} WHERE id = ?`, id));
  }

  async getSource(id: string): Promise<SourceRecord | undefined> {
    const row = this.#db.get('SELECT * FROM sources WHERE id = ?', id);
    return row && sourceFromRow(row);
  }

  async getSourceKey(keyId: string): Promise<OwnedSource | undefined> {
    const row = this.#db.get('SELECT id, key_id, key_sealed FROM sources WHERE key_id = ?', keyId);
    return row && ownedSourceFromRow(row);
  }

  /** In writes of a few hundred beats each, so a fleet's batch never holds the event loop for long. */
  async recordHeartbeats(beats: readonly Heartbeat[], online?: (beat: Heartbeat) => AuditEvent): Promise<number> {
    let written = 0;
    for (let i = 0; i < beats.length; i += WRITE_CHUNK) {
      written += await this.#recordHeartbeatChunk(beats.slice(i, i + WRITE_CHUNK), online);
      await yieldToRequests();
    }
    return written;
  }

  /** One chunk: its Online transitions (flag cleared, event recorded) and its beats, in one write. */
  #recordHeartbeatChunk(beats: readonly Heartbeat[], online?: (beat: Heartbeat) => AuditEvent): Promise<number> {
    return this.#db.writeUnsynced(() => {
      let written = 0;
      // One statement finds the beats of sources marked offline: each is an Online transition.
      const back = this.#db.all(
        'UPDATE sources SET offline = 0 WHERE offline = 1 AND id IN (SELECT value FROM json_each(?)) RETURNING id',
        JSON.stringify(beats.map((b) => b.sourceId)),
      );
      if (back.length > 0 && online) {
        const byId = new Map(beats.map((b) => [b.sourceId, b]));
        for (const r of back) {
          const beat = byId.get(String(r.id));
          if (beat) this.#event(online(beat));
        }
      }
      for (const b of beats) {
        written += this.#db.run(
          `UPDATE sources SET last_heartbeat_at = MAX(last_heartbeat_at, ?), system_info = COALESCE(?, system_info),
           status_info = COALESCE(?, status_info) WHERE id = ?`,
          b.at,
          b.systemInfo ?? null,
          b.statusInfo ?? null,
          b.sourceId,
        );
      }
      return written;
    });
  }

  async describeSources(q: SourceQuery): Promise<{ total: number; items: Tagged<SourceRecord>[] }> {
    const w = sourceWhere(q);
    const count =
      w.sql === ''
        ? { sql: 'SELECT n FROM source_count WHERE one = 1', params: [] }
        : { sql: `SELECT COUNT(*) AS n FROM sources ${w.sql}`, params: w.params };
    const page = { sql: `SELECT * FROM sources ${w.sql} ORDER BY seq DESC LIMIT ? OFFSET ?`, params: [...w.params, q.limit, q.offset] };
    const cheap =
      (w.sql === '' || (q.ids !== undefined && q.name === undefined && q.accessTokenId === undefined && q.state === undefined)) &&
      q.offset <= CHEAP_OFFSET;
    const [counted, rows] = await this.#read(cheap, [count, page]);
    const items = (rows ?? []).map(sourceFromRow);
    return { total: Number(counted?.[0]?.n), items: withTags(items, this.#tagsOf('sourceserver', items)) };
  }

  /** Statements whose cost grows with the data go to the read worker; cheap ones (or an in-memory database's) run here. */
  #read(cheap: boolean, statements: Array<{ sql: string; params: unknown[] }>): Promise<Row[][]> {
    if (this.#reads && !cheap) return this.#reads.run(statements);
    return Promise.resolve(statements.map(({ sql, params }) => this.#db.all(sql, ...params)));
  }

  markOffline(onlineSince: number, offline: (sourceId: string, lastHeartbeatAt: number) => AuditEvent, limit: number): Promise<number> {
    return this.#db.write(() => {
      const marked = this.#db.all(
        `UPDATE sources SET offline = 1 WHERE id IN
           (SELECT id FROM sources WHERE offline = 0 AND last_heartbeat_at < ? ORDER BY last_heartbeat_at LIMIT ?)
         RETURNING id, last_heartbeat_at`,
        onlineSince,
        limit,
      );
      for (const r of marked) this.#event(offline(String(r.id), Number(r.last_heartbeat_at)));
      return marked.length;
    });
  }

  modifySource(id: string, patch: { name?: string; description?: string }, event?: AuditEvent): Promise<boolean> {
    return this.#change(
      event,
      'UPDATE sources SET name = COALESCE(?, name), description = COALESCE(?, description) WHERE id = ?',
      patch.name ?? null,
      patch.description ?? null,
      id,
    );
  }

  deleteSource(id: string, event?: AuditEvent): Promise<boolean> {
    return this.#db.write(() => {
      this.#db.run("DELETE FROM tags WHERE resource_type = 'sourceserver' AND resource_id = ?", id);
      const deleted = this.#db.run('DELETE FROM sources WHERE id = ?', id) > 0;
      if (deleted) this.#event(event);
      return deleted;
    });
  }

  approveSources(ids: readonly string[], approved?: (sourceId: string) => AuditEvent): Promise<BatchOutcome> {
    return this.#db.write((): BatchOutcome => {
      const missing = this.#firstMissing('sourceserver', ids);
      if (missing !== undefined) return { outcome: 'not-found', id: missing };
      const changed = this.#db.all(
        `UPDATE sources SET approval_status = 'Approved' WHERE approval_status = 'Pending' AND ${inList('id', ids)[0]} RETURNING id`,
        ...ids,
      );
      if (approved) for (const r of sortedIds(changed)) this.#event(approved(r));
      return { outcome: 'done' };
    });
  }

  rejectSources(ids: readonly string[], rejected?: (sourceId: string, status: ApprovalStatus) => AuditEvent): Promise<BatchOutcome> {
    return this.#db.write((): BatchOutcome => {
      const missing = this.#firstMissing('sourceserver', ids);
      if (missing !== undefined) return { outcome: 'not-found', id: missing };
      this.#db.run(`DELETE FROM tags WHERE resource_type = 'sourceserver' AND ${inList('resource_id', ids)[0]}`, ...ids);
      const deleted = this.#db.all(`DELETE FROM sources WHERE ${inList('id', ids)[0]} RETURNING id, approval_status`, ...ids);
      if (rejected) {
        const status = new Map(deleted.map((r) => [String(r.id), String(r.approval_status) as ApprovalStatus]));
        for (const id of sortedIds(deleted)) this.#event(rejected(id, status.get(id) ?? 'Approved'));
      }
      return { outcome: 'done' };
    });
  }

  tagResources(type: TagResourceType, ids: readonly string[], tags: readonly Tag[], tagged?: (id: string) => AuditEvent): Promise<BatchOutcome> {
    const keys = tags.map((t) => t.key);
    return this.#db.write((): BatchOutcome => {
      const missing = this.#firstMissing(type, ids);
      if (missing !== undefined) return { outcome: 'not-found', id: missing };
      // Checked before writing: the tags a resource keeps (other keys) plus the ones set.
      for (const id of ids) {
        const kept = Number(
          this.#db.get(
            `SELECT COUNT(*) AS n FROM tags WHERE resource_type = ? AND resource_id = ? AND key NOT IN (${placeholders(keys.length)})`,
            type,
            id,
            ...keys,
          )?.n,
        );
        if (kept + keys.length > MAX_TAGS_PER_RESOURCE) return { outcome: 'too-many-tags', id };
      }
      for (const id of ids) for (const t of tags) this.#db.run(UPSERT_TAG, type, id, t.key, t.value);
      if (tagged) for (const id of [...new Set(ids)].sort()) this.#event(tagged(id));
      return { outcome: 'done' };
    });
  }

  untagResources(
    type: TagResourceType,
    ids: readonly string[],
    keys: readonly string[] | 'all',
    untagged?: (id: string, removed: string[]) => AuditEvent,
  ): Promise<BatchOutcome> {
    return this.#db.write((): BatchOutcome => {
      const missing = this.#firstMissing(type, ids);
      if (missing !== undefined) return { outcome: 'not-found', id: missing };
      const [idSql] = inList('resource_id', ids);
      const removed =
        keys === 'all'
          ? this.#db.all(`DELETE FROM tags WHERE resource_type = ? AND ${idSql} RETURNING resource_id, key`, type, ...ids)
          : this.#db.all(
              `DELETE FROM tags WHERE resource_type = ? AND ${idSql} AND ${inList('key', keys)[0]} RETURNING resource_id, key`,
              type,
              ...ids,
              ...keys,
            );
      if (untagged) for (const [id, lost] of keysById(removed)) this.#event(untagged(id, lost));
      return { outcome: 'done' };
    });
  }

  async listTagResources(q: TagQuery): Promise<TagRow[]> {
    const w = where([
      ['resource_type = ?', q.type],
      q.ids ? inList('resource_id', q.ids) : undefined,
      ...(q.tags ?? []).map((f) => hasTag('resource_id', q.type, f)),
      q.after ? ['(resource_id, key) > (?, ?)', q.after.resourceId, q.after.key] : undefined,
    ]);
    // Walks the primary key in order; a tag filter is an indexed lookup per resource, so that
    // query goes to the read worker when there is one.
    const [rows] = await this.#read(q.tags === undefined, [
      { sql: `SELECT resource_id, key, value FROM tags ${w.sql} ORDER BY resource_id, key LIMIT ?`, params: [...w.params, q.limit] },
    ]);
    return (rows ?? []).map((r) => ({ resourceId: String(r.resource_id), key: String(r.key), value: String(r.value) }));
  }

  async describeEvents(q: EventQuery): Promise<StoredEvent[]> {
    const w = where([
      q.types ? inList('event_type', q.types) : undefined,
      q.resourceId !== undefined ? ['resource_id = ?', q.resourceId] : undefined,
      q.startTime !== undefined ? ['event_time >= ?', q.startTime] : undefined,
      q.endTime !== undefined ? ['event_time <= ?', q.endTime] : undefined,
      q.beforeSeq !== undefined ? ['seq < ?', q.beforeSeq] : undefined,
    ]);
    const [rows] = await this.#read(false, [
      { sql: `SELECT * FROM audit_events ${w.sql} ORDER BY seq DESC LIMIT ?`, params: [...w.params, q.limit] },
    ]);
    return (rows ?? []).map(eventFromRow);
  }

  createWebhook(w: WebhookRecord): Promise<void> {
    return this.#db.write(() => {
      this.#db.run(
        `INSERT INTO webhooks (id, url, event_types, expiring_soon_days, secret_sealed, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
        w.id,
        w.url,
        eventTypesColumn(w.eventTypes),
        w.expiringSoonDays,
        w.secretSealed,
        w.createdAt,
      );
    }, true);
  }

  async listWebhooks(): Promise<WebhookRecord[]> {
    return this.#db.all('SELECT * FROM webhooks ORDER BY seq DESC').map(webhookFromRow);
  }

  async getWebhook(id: string): Promise<WebhookRecord | undefined> {
    const row = this.#db.get('SELECT * FROM webhooks WHERE id = ?', id);
    return row && webhookFromRow(row);
  }

  deleteWebhook(id: string): Promise<boolean> {
    return this.#db.write(() => {
      this.#db.run('DELETE FROM webhook_deliveries WHERE webhook_id = ?', id);
      this.#db.run('DELETE FROM expiry_notices WHERE webhook_id = ?', id);
      return this.#db.run('DELETE FROM webhooks WHERE id = ?', id) > 0;
    });
  }

  async describeDeliveries(q: DeliveryQuery): Promise<{ total: number; items: DeliveryRecord[] }> {
    const w = where([['d.webhook_id = ?', q.webhookId], q.status ? ['d.status = ?', q.status] : undefined]);
    const [counted, rows] = await this.#read(false, [
      { sql: `SELECT COUNT(*) AS n FROM webhook_deliveries d ${w.sql}`, params: w.params },
      {
        sql: `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN audit_events e ON e.seq = d.event_seq ${w.sql}
              ORDER BY d.position DESC LIMIT ? OFFSET ?`,
        params: [...w.params, q.limit, q.offset],
      },
    ]);
    return { total: Number(counted?.[0]?.n), items: (rows ?? []).map(deliveryFromRow) };
  }

  noticeExpiringTokens(now: number, expiring: (tokenId: string, expiresAt: number, days: number) => AuditEvent): Promise<number> {
    return this.#db.write(() => {
      let queued = 0;
      const hooks = this.#db.all("SELECT id, expiring_soon_days FROM webhooks WHERE instr(event_types, ',AccessToken.ExpiringSoon,') > 0");
      for (const h of hooks) {
        const days = Number(h.expiring_soon_days);
        const due = this.#db.all(
          `INSERT INTO expiry_notices (webhook_id, access_token_id)
             SELECT ?, t.id FROM access_tokens t WHERE t.closed = 0 AND t.expires_at > ? AND t.expires_at <= ?
           ON CONFLICT DO NOTHING RETURNING access_token_id`,
          h.id,
          now,
          now + days * 86_400_000,
        );
        for (const r of due) {
          const tokenId = String(r.access_token_id);
          const token = this.#db.get('SELECT expires_at FROM access_tokens WHERE id = ?', tokenId);
          const event = expiring(tokenId, Number(token?.expires_at), days);
          const seq = Number(this.#db.get(`${INSERT_EVENT} RETURNING seq`, ...eventValues(event))?.seq);
          this.#db.run(
            'INSERT INTO webhook_deliveries (webhook_id, position, event_seq, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?)',
            h.id,
            seq,
            seq,
            event.time,
            event.time,
          );
          queued++;
        }
      }
      return queued;
    });
  }

  async webhooksDue(now: number, owner: string): Promise<string[]> {
    return this.#db
      .all(
        `SELECT w.id FROM webhooks w WHERE (w.lease_until <= ? OR w.lease_owner = ?)
         AND (SELECT d.next_attempt_at FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.status = 'pending'
              ORDER BY d.position LIMIT 1) <= ?`,
        now,
        owner,
        now,
      )
      .map((r) => String(r.id));
  }

  async leaseWebhook(id: string, owner: string, now: number, until: number): Promise<WebhookRecord | undefined> {
    const row = await this.#db.write(
      () =>
        this.#db.get(
          'UPDATE webhooks SET lease_owner = ?, lease_until = ? WHERE id = ? AND (lease_until <= ? OR lease_owner = ?) RETURNING *',
          owner,
          until,
          id,
          now,
          owner,
        ),
      true,
    );
    return row && webhookFromRow(row);
  }

  releaseWebhook(id: string, owner: string): Promise<void> {
    return this.#db.write(() => {
      this.#db.run('UPDATE webhooks SET lease_until = 0 WHERE id = ? AND lease_owner = ?', id, owner);
    }, true);
  }

  async nextDelivery(webhookId: string): Promise<DeliveryRecord | undefined> {
    const row = this.#db.get(
      `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN audit_events e ON e.seq = d.event_seq
       WHERE d.webhook_id = ? AND d.status = 'pending' ORDER BY d.position LIMIT 1`,
      webhookId,
    );
    return row && deliveryFromRow(row);
  }

  recordAttempt(webhookId: string, position: number, r: AttemptResult): Promise<void> {
    return this.#db.write(() => {
      this.#db.run(
        `UPDATE webhook_deliveries SET attempts = ?, first_attempt_at = ?, last_attempt_at = ?, last_status_code = ?, status = ?,
         next_attempt_at = ? WHERE webhook_id = ? AND position = ? AND status = 'pending'`,
        r.attempts,
        r.firstAttemptAt,
        r.at,
        r.statusCode,
        r.status,
        r.nextAttemptAt,
        webhookId,
        position,
      );
    }, true);
  }

  resealSecrets(reseal: (sealed: string, recordId: string) => string): Promise<number> {
    return this.#db.write(() => {
      let n = 0;
      for (const r of this.#db.all('SELECT id, secret_sealed FROM access_keys')) {
        n += this.#db.run('UPDATE access_keys SET secret_sealed = ? WHERE id = ?', reseal(String(r.secret_sealed), String(r.id)), r.id);
      }
      for (const r of this.#db.all('SELECT id, code_sealed FROM access_tokens')) {
        n += this.#db.run('UPDATE access_tokens SET code_sealed = ? WHERE id = ?', reseal(String(r.code_sealed), String(r.id)), r.id);
      }
      for (const r of this.#db.all('SELECT id, key_id, key_sealed FROM sources')) {
        n += this.#db.run('UPDATE sources SET key_sealed = ? WHERE id = ?', reseal(String(r.key_sealed), String(r.key_id)), r.id);
      }
      for (const r of this.#db.all('SELECT id, secret_sealed FROM webhooks')) {
        n += this.#db.run('UPDATE webhooks SET secret_sealed = ? WHERE id = ?', reseal(String(r.secret_sealed), String(r.id)), r.id);
      }
      return n;
    });
  }
}
