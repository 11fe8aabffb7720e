import pg from 'pg';
import {
  INSERT_ACCESS_KEY,
  INSERT_ACCESS_TOKEN,
  INSERT_SOURCE,
  UPDATE_SOURCE_ON_IMPORT,
  accessKeyFromRow,
  accessKeyToRow,
  accessTokenFromRow,
  accessTokenToRow,
  ownedSourceFromRow,
  sourceFieldValues,
  sourceFromRow,
  sourceWhere,
  tokenWhere,
} from '../rows.ts';
import {
  type AccessKeyRecord,
  type AccessTokenRecord,
  type CreateTokenOutcome,
  type IdempotencyKey,
  type ImportOutcome,
  type ImportRequest,
  type SourceQuery,
  type SourceRecord,
  type Store,
  StoreOpenError,
  StoreUnavailableError,
  type TokenQuery,
} from '../store.ts';
import { Semaphore } from '../../util/semaphore.ts';
import { withTimeout } from '../../util/with-timeout.ts';
import { COUNT_SHARDS, CREATE_SCHEMA_MIGRATIONS, POSTGRES_MIGRATIONS } from './migrations.ts';

const countShard = () => Math.floor(Math.random() * COUNT_SHARDS);

type Row = Record<string, unknown>;
type Query = (sql: string, ...params: unknown[]) => Promise<pg.QueryResult<Row>>;
/** `pg` honours a per-query `query_timeout` (client/query.js); @types/pg does not declare it. */
type TimedQuery = pg.QueryConfig & { query_timeout: number };

/**
 * How an operation talks to the database:
 * - read: autocommit reads; safe to run again on a fresh connection.
 * - write: one autocommit write; never re-sent after a connection broke (it may have committed).
 * - tx: BEGIN ... COMMIT, run again as a whole on serialization failure or deadlock.
 */
type OpKind = 'read' | 'write' | 'tx';

export interface PostgresStoreOptions {
  /** Connections this node may hold. */
  poolSize?: number;
  /** Milliseconds an operation may take, connecting included, before it fails as unavailable. */
  timeoutMs?: number;
}

const DEFAULT_POOL_SIZE = 10;
/** Pages up to this offset of an unfiltered list (or an id list) are cheap. */
const CHEAP_OFFSET = 1_000;
const DEFAULT_TIMEOUT_MS = 5_000;
/** Attempts of one transaction that keeps losing to serialization failures or deadlocks. */
const MAX_ATTEMPTS = 6;
const MIGRATION_TIMEOUT_MS = 60_000;

/** SQLSTATEs after which the whole transaction may simply run again. */
const RETRYABLE = new Set(['40001', '40P01']);
/** SQLSTATEs and socket errors meaning the database cannot be reached or cannot serve now. */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, recovering)
  '57014', // query_canceled: our statement_timeout
  '53300', // too_many_connections
]);
const CONNECTION_MESSAGES =
  /Connection terminated|Query read timeout|not queryable|timeout exceeded when trying to connect|connection timeout|Client was closed/i;

class DeadlineExceeded extends Error {
  constructor() {
    super('the database did not answer in time');
    this.name = 'DeadlineExceeded';
  }
}

/** Thrown inside a transaction to roll it back and run it again, like a serialization failure. */
class RetryTransaction extends Error {
  readonly code = '40001';
  constructor() {
    super('a concurrent change decided first; running the transaction again');
  }
}

/** A connection taken from the pool turned out dead before it did any work. */
class StaleConnection extends Error {
  constructor(cause: unknown) {
    super('stale pooled connection', { cause });
  }
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}

/** The connection itself failed: it must not go back to the pool. */
function isConnectionLevel(err: unknown): boolean {
  if (err instanceof DeadlineExceeded) return true;
  const code = errorCode(err);
  if (code.startsWith('08') || (UNAVAILABLE_CODES.has(code) && code !== '53300')) return true;
  return CONNECTION_MESSAGES.test((err as Error | null)?.message ?? '');
}

/** The API answers these with 503 ServiceUnavailable. */
export function isUnavailableError(err: unknown): boolean {
  if (err instanceof StaleConnection) return true;
  return isConnectionLevel(err) || UNAVAILABLE_CODES.has(errorCode(err));
}

/** `?` placeholders (rows.ts, shared with SQLite) to PostgreSQL's `$n`; quoted text is left alone. */
export function toPgPlaceholders(sql: string): string {
  let n = 0;
  let quoted = false;
  let out = '';
  for (const ch of sql) {
    if (ch === "'") quoted = !quoted;
    out += ch === '?' && !quoted ? `$${++n}` : ch;
  }
  return out;
}

/** The URL without password or query parameters (which may carry one), for logs. */
export function describePostgresUrl(url: string): string {
  try {
    const u = new URL(url);
    return `postgres://${u.username ? `${u.username}@` : ''}${u.host}${u.pathname}`;
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

function beforeDeadline<T>(promise: Promise<T>, deadline: number): Promise<T> {
  return withTimeout(promise, deadline - Date.now(), () => new DeadlineExceeded());
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Full jitter over an exponential ceiling, so that racing nodes do not collide again in step. */
const backoffMs = (attempt: number) => Math.random() * Math.min(200, 5 * 2 ** attempt);

const noop = () => {};

/**
 * PostgreSQL through a bounded `pg` pool. Every operation has a deadline (the
 * store timeout) that covers waiting for a connection, connecting and each
 * statement; past it, or when the server cannot be reached, the operation fails
 * with StoreUnavailableError (503) and the broken connection is dropped, so the
 * pool refills by itself once the database is back. Nothing session-scoped is
 * used on the request path (no SET, no named statements, no advisory locks), so
 * the same SQL runs behind a transaction pooler and on CockroachDB/YugabyteDB.
 */
export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  readonly description: string;
  readonly #pool: pg.Pool;
  readonly #timeoutMs: number;
  /** Permits for lists whose cost grows with the data: half the pool. */
  readonly #heavy: Semaphore;
  readonly #sql = new Map<string, string>();
  #closed = false;

  private constructor(url: string, pool: pg.Pool, timeoutMs: number, poolSize: number) {
    this.description = describePostgresUrl(url);
    this.#pool = pool;
    this.#timeoutMs = timeoutMs;
    this.#heavy = new Semaphore(Math.max(1, Math.floor(poolSize / 2)));
  }

  static async open(url: string, opts: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const pool = new pg.Pool({
      connectionString: url,
      max: opts.poolSize ?? DEFAULT_POOL_SIZE,
      connectionTimeoutMillis: timeoutMs,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      application_name: 'smcd',
      // Server side limits as start-up parameters, not SET: they hold for every statement
      // without a session-scoped command on the request path.
      statement_timeout: timeoutMs,
      idle_in_transaction_session_timeout: Math.max(2 * timeoutMs, 10_000),
    });
    // An idle connection the server dropped is removed by the pool, which then emits
    // 'error'; a checked-out one emits on the client. Both surface again as failed
    // queries, so the events themselves only need a listener.
    pool.on('error', noop);
    pool.on('connect', (client) => client.on('error', noop));
    const store = new PostgresStore(url, pool, timeoutMs, opts.poolSize ?? DEFAULT_POOL_SIZE);
    try {
      await store.#migrate(url, timeoutMs);
    } catch (err) {
      await pool.end().catch(noop);
      throw isUnavailableError(err) ? new StoreUnavailableError(err) : err;
    }
    return store;
  }

  /**
   * Brings the schema up to date, safely when several nodes start at once and without
   * advisory locks: each step runs in one transaction that first inserts its version
   * into schema_migrations. A second node's insert waits for the first one's commit and
   * then fails on the primary key: the step is applied, so it rolls back and reads again.
   */
  async #migrate(url: string, timeoutMs: number): Promise<void> {
    const client = new pg.Client({
      connectionString: url,
      connectionTimeoutMillis: timeoutMs,
      application_name: 'smcd-migrate',
      statement_timeout: MIGRATION_TIMEOUT_MS,
      query_timeout: MIGRATION_TIMEOUT_MS,
    });
    client.on('error', noop);
    await client.connect();
    try {
      // Concurrent CREATE TABLE IF NOT EXISTS can still collide in the catalog (23505, 42P07,
      // or 42710 for the row type); the statement then simply runs again.
      for (let attempt = 1; ; attempt++) {
        try {
          await client.query(CREATE_SCHEMA_MIGRATIONS);
          break;
        } catch (err) {
          if (attempt >= MAX_ATTEMPTS || !['23505', '42P07', '42710', ...RETRYABLE].includes(errorCode(err))) throw err;
          await sleep(backoffMs(attempt));
        }
      }
      for (let i = 0; i < POSTGRES_MIGRATIONS.length; i++) {
        const version = i + 1;
        for (let attempt = 1; ; attempt++) {
          const seen = await client.query('SELECT 1 FROM schema_migrations WHERE version = $1', [version]);
          if (seen.rowCount) break;
          try {
            await client.query('BEGIN');
            await client.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [version, Date.now()]);
            for (const statement of POSTGRES_MIGRATIONS[i]) await client.query(statement);
            await client.query('COMMIT');
            break;
          } catch (err) {
            await client.query('ROLLBACK').catch(noop);
            // 23505: another node applied this step; read the ledger again.
            if (attempt >= MAX_ATTEMPTS || !['23505', ...RETRYABLE].includes(errorCode(err))) throw err;
          }
        }
      }
      const newest = Number((await client.query('SELECT MAX(version) AS v FROM schema_migrations')).rows[0].v);
      if (newest > POSTGRES_MIGRATIONS.length)
        throw new StoreOpenError(
          `The database schema is at version ${newest}, newer than this smcd knows (${POSTGRES_MIGRATIONS.length}): upgrade smcd on this node.`,
        );
    } finally {
      await client.end().catch(noop);
    }
  }

  #text(sql: string): string {
    let text = this.#sql.get(sql);
    if (text === undefined) {
      text = toPgPlaceholders(sql);
      this.#sql.set(sql, text);
    }
    return text;
  }

  async #acquire(deadline: number): Promise<pg.PoolClient> {
    const pending = this.#pool.connect();
    try {
      return await beforeDeadline(pending, deadline);
    } catch (err) {
      // A connection that arrives after we gave up goes straight back.
      pending.then((c) => c.release(), noop);
      throw err;
    }
  }

  async #attempt<T>(kind: OpKind, fn: (q: Query) => Promise<T>, deadline: number): Promise<T> {
    const client = await this.#acquire(deadline);
    let broken: Error | undefined;
    let sent = 0;
    const q: Query = async (sql, ...params) => {
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new DeadlineExceeded();
      sent++;
      try {
        const config: TimedQuery = { text: this.#text(sql), values: params, query_timeout: remaining };
        return await client.query<Row>(config);
      } catch (err) {
        if (isConnectionLevel(err)) {
          broken = err as Error;
          // Nothing reached the database yet (or it was a read): safe to try once more.
          if (sent === 1 && kind !== 'write') throw new StaleConnection(err);
        }
        throw err;
      }
    };
    try {
      if (kind === 'tx') await q('BEGIN');
      const result = await fn(q);
      if (kind === 'tx') await q('COMMIT');
      return result;
    } catch (err) {
      if (kind === 'tx' && !broken) {
        const rollback: TimedQuery = { text: 'ROLLBACK', query_timeout: 1_000 };
        await client.query(rollback).catch((e: Error) => {
          broken = e;
        });
      }
      throw err;
    } finally {
      // Releasing with an error closes the connection instead of pooling it.
      client.release(broken);
    }
  }

  async #retrying<T>(kind: OpKind, fn: (q: Query) => Promise<T>, deadline: number): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#attempt(kind, fn, deadline);
      } catch (err) {
        const again =
          (RETRYABLE.has(errorCode(err)) && attempt < MAX_ATTEMPTS) || (err instanceof StaleConnection && attempt === 1);
        const wait = err instanceof StaleConnection ? 0 : backoffMs(attempt);
        if (!again || Date.now() + wait >= deadline) throw err instanceof StaleConnection ? err.cause : err;
        await sleep(wait);
      }
    }
  }

  /** Runs one operation within the store timeout; unreachable becomes StoreUnavailableError. */
  async #op<T>(kind: OpKind, fn: (q: Query) => Promise<T>, timeoutMs = this.#timeoutMs): Promise<T> {
    if (this.#closed) throw new Error('the store is closed');
    const deadline = Date.now() + timeoutMs;
    const work = this.#retrying(kind, fn, deadline);
    work.catch(noop); // the deadline may answer first; the attempt then winds down by itself
    try {
      return await beforeDeadline(work, deadline);
    } catch (err) {
      if (isUnavailableError(err)) throw new StoreUnavailableError(err);
      throw err;
    }
  }

  async #get(sql: string, ...params: unknown[]): Promise<Row | undefined> {
    return this.#op('read', async (q): Promise<Row | undefined> => (await q(sql, ...params)).rows[0]);
  }

  async #all(sql: string, ...params: unknown[]): Promise<Row[]> {
    return this.#op('read', async (q) => (await q(sql, ...params)).rows);
  }

  async #run(sql: string, ...params: unknown[]): Promise<number> {
    return this.#op('write', async (q) => (await q(sql, ...params)).rowCount ?? 0);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }

  async ping(): Promise<void> {
    await this.#op('read', (q) => q('SELECT 1 AS ok'), Math.min(this.#timeoutMs, 2_000));
  }

  async getMeta(key: string): Promise<string | undefined> {
    const row = await this.#get('SELECT value FROM meta WHERE key = ?', key);
    return row ? String(row.value) : undefined;
  }

  async setMeta(key: string, value: string): Promise<void> {
    await this.#run('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value', key, value);
  }

  async putMetaIfAbsent(key: string, value: string): Promise<string> {
    // Two statements, not one: the SELECT needs a snapshot taken after a concurrent
    // insert it waited for has committed (READ COMMITTED gives each statement its own).
    return this.#op('write', async (q) => {
      await q('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING', key, value);
      return String((await q('SELECT value FROM meta WHERE key = ?', key)).rows[0].value);
    });
  }

  async insertAccessKey(key: AccessKeyRecord): Promise<boolean> {
    return (await this.#run(INSERT_ACCESS_KEY, ...accessKeyToRow(key))) > 0;
  }

  async getRootAccessKey(): Promise<AccessKeyRecord | undefined> {
    const row = await this.#get('SELECT * FROM access_keys WHERE is_root = 1');
    return row && accessKeyFromRow(row);
  }

  async getAccessKey(id: string): Promise<AccessKeyRecord | undefined> {
    const row = await this.#get('SELECT * FROM access_keys WHERE id = ?', id);
    return row && accessKeyFromRow(row);
  }

  async listAccessKeys(): Promise<AccessKeyRecord[]> {
    return (await this.#all('SELECT * FROM access_keys ORDER BY created_at, id')).map(accessKeyFromRow);
  }

  async setAccessKeyEnabled(id: string, enabled: boolean): Promise<boolean> {
    return (await this.#run('UPDATE access_keys SET enabled = ? WHERE id = ?', enabled ? 1 : 0, id)) > 0;
  }

  async setAccessKeySecret(id: string, secretSealed: string): Promise<boolean> {
    return (await this.#run('UPDATE access_keys SET secret_sealed = ? WHERE id = ?', secretSealed, id)) > 0;
  }

  async deleteAccessKey(id: string): Promise<boolean> {
    return (await this.#run('DELETE FROM access_keys WHERE id = ?', id)) > 0;
  }

  async useNonce(keyId: string, nonce: string, now: number, expiresAt: number): Promise<boolean> {
    // One statement: a live row refuses (also when another node's insert of it is still
    // in flight: ON CONFLICT waits for it); an expired row is taken over, not a replay.
    const changed = await this.#run(
      `INSERT INTO nonces (key_id, nonce, expires_at) VALUES (?, ?, ?)
       ON CONFLICT (key_id, nonce) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE nonces.expires_at <= ?`,
      keyId,
      nonce,
      expiresAt,
      now,
    );
    return changed > 0;
  }

  async purgeExpired(now: number): Promise<void> {
    await this.#op('write', async (q) => {
      await q('DELETE FROM nonces WHERE expires_at <= ?', now);
      await q('DELETE FROM client_tokens WHERE expires_at <= ?', now);
    });
  }

  async createAccessToken(token: AccessTokenRecord, idem?: IdempotencyKey): Promise<CreateTokenOutcome> {
    if (!idem) {
      // One statement: the code and its count move together.
      await this.#run(
        `WITH created AS (${INSERT_ACCESS_TOKEN} RETURNING 1)
         UPDATE access_token_counts SET n = n + (SELECT COUNT(*) FROM created) WHERE shard = ?`,
        ...accessTokenToRow(token),
        countShard(),
      );
      return { outcome: 'created', token };
    }
    return this.#op('tx', async (q): Promise<CreateTokenOutcome> => {
      // The primary key decides between racing nodes: the claim that inserts (or takes
      // over an expired one) creates; the other waits for its commit, then replays it.
      for (let i = 0; i < 3; i++) {
        const claimed = await q(
          `INSERT INTO client_tokens (owner_key_id, client_token, fingerprint, access_token_id, expires_at) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (owner_key_id, client_token) DO UPDATE SET fingerprint = EXCLUDED.fingerprint,
           access_token_id = EXCLUDED.access_token_id, expires_at = EXCLUDED.expires_at
           WHERE client_tokens.expires_at <= ?`,
          idem.ownerKeyId,
          idem.clientToken,
          idem.fingerprint,
          token.id,
          idem.expiresAt,
          token.createdAt,
        );
        if (claimed.rowCount) {
          await q(INSERT_ACCESS_TOKEN, ...accessTokenToRow(token));
          await q('UPDATE access_token_counts SET n = n + 1 WHERE shard = ?', countShard());
          return { outcome: 'created', token };
        }
        const prior = (
          await q(
            'SELECT fingerprint, access_token_id FROM client_tokens WHERE owner_key_id = ? AND client_token = ? AND expires_at > ?',
            idem.ownerKeyId,
            idem.clientToken,
            token.createdAt,
          )
        ).rows[0];
        if (prior) {
          return prior.fingerprint === idem.fingerprint
            ? { outcome: 'replayed', tokenId: String(prior.access_token_id) }
            : { outcome: 'mismatch' };
        }
        // The live claim was purged between the two statements: claim again.
      }
      throw new Error('ClientToken claim did not settle');
    });
  }

  async getAccessToken(id: string): Promise<AccessTokenRecord | undefined> {
    const row = await this.#get('SELECT * FROM access_tokens WHERE id = ?', id);
    return row && accessTokenFromRow(row);
  }

  async listAccessTokens(query: TokenQuery): Promise<{ total: number; items: AccessTokenRecord[] }> {
    const where = tokenWhere(query);
    const list = () =>
      this.#op('read', async (q) => {
        // Unfiltered, the counter shards answer; a filter counts its matches through its indexes.
        const total = Number(
          where.sql === ''
            ? (await q('SELECT COALESCE(SUM(n), 0) AS n FROM access_token_counts')).rows[0].n
            : (await q(`SELECT COUNT(*) AS n FROM access_tokens ${where.sql}`, ...where.params)).rows[0].n,
        );
        const rows = await q(
          `SELECT * FROM access_tokens ${where.sql} ORDER BY seq DESC LIMIT ? OFFSET ?`,
          ...where.params,
          query.limit,
          query.offset,
        );
        return { total, items: rows.rows.map(accessTokenFromRow) };
      });
    const cheap = (where.sql === '' || (query.ids !== undefined && query.name === undefined && query.status === undefined)) && query.offset <= CHEAP_OFFSET;
    return cheap ? list() : this.#heavily(list);
  }

  async disableAccessToken(id: string): Promise<boolean> {
    return (await this.#run('UPDATE access_tokens SET disabled = 1 WHERE id = ?', id)) > 0;
  }

  async deleteAccessToken(id: string): Promise<boolean> {
    // The token row first: the same lock order as importSource, so the two cannot deadlock.
    return this.#op('tx', async (q) => {
      const deleted = (await q('DELETE FROM access_tokens WHERE id = ?', id)).rowCount ?? 0;
      await q('DELETE FROM token_uses WHERE access_token_id = ?', id);
      if (deleted > 0) await q('UPDATE access_token_counts SET n = n - 1 WHERE shard = ?', countShard());
      return deleted > 0;
    });
  }

  async importSource(req: ImportRequest): Promise<ImportOutcome> {
    // The token row lock serialises every import with this code, on every node: the
    // ownership check, the count check, the use record and the increment are one decision.
    return this.#op('tx', async (q): Promise<ImportOutcome> => {
      const row = (await q('SELECT * FROM access_tokens WHERE id = ? FOR UPDATE', req.tokenId)).rows[0];
      if (!row) return { outcome: 'refused', reason: 'token-gone' };
      const refusal = req.refusal(accessTokenFromRow(row));
      if (refusal) return { outcome: 'refused', reason: refusal };
      // The machine's source row is locked too: the same machine may be importing with
      // another code (another token lock) at this moment.
      const existing = (await q('SELECT id, key_id, key_sealed FROM sources WHERE machine_id = ? FOR UPDATE', req.machineId)).rows[0];
      if (existing && !req.ownsSource(ownedSourceFromRow(existing))) {
        return { outcome: 'refused', reason: 'machine-in-use', sourceId: String(existing.id) };
      }
      const used = Boolean(
        (await q('SELECT 1 AS used FROM token_uses WHERE access_token_id = ? AND machine_id = ?', req.tokenId, req.machineId)).rowCount,
      );
      if (!used) {
        const slot = await q(
          'UPDATE access_tokens SET registered_count = registered_count + 1 WHERE id = ? AND registered_count < count',
          req.tokenId,
        );
        if (!slot.rowCount) return { outcome: 'refused', reason: 'count' };
        await q('INSERT INTO token_uses (access_token_id, machine_id, used_at) VALUES (?, ?, ?)', req.tokenId, req.machineId, req.now);
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
          req.now,
          existing.id,
        );
        return { outcome: 'imported', sourceId: String(existing.id), keyId, usedSlot: !used, created: false };
      }
      const inserted = await q(
        `${INSERT_SOURCE} ON CONFLICT (machine_id) DO NOTHING`,
        req.newSourceId,
        req.newKeyId,
        req.sealKey(req.newKeyId),
        req.tokenId,
        req.machineId,
        ...sourceFieldValues(req.fields, 'insert'),
        req.now,
        req.now,
        req.now,
        req.clientIp,
        req.clientIp,
        req.now,
      );
      // Another import created this machine's source since our read: roll back (the slot
      // too) and decide again, now against that source and its owner.
      if (!inserted.rowCount) throw new RetryTransaction();
      return { outcome: 'imported', sourceId: req.newSourceId, keyId: req.newKeyId, usedSlot: !used, created: true };
    });
  }

  async getSource(id: string): Promise<SourceRecord | undefined> {
    const row = await this.#get('SELECT * FROM sources WHERE id = ?', id);
    return row && sourceFromRow(row);
  }

  async getSourceByKeyId(keyId: string): Promise<SourceRecord | undefined> {
    const row = await this.#get('SELECT * FROM sources WHERE key_id = ?', keyId);
    return row && sourceFromRow(row);
  }

  async recordHeartbeat(sourceId: string, now: number, systemInfo?: string, statusInfo?: string): Promise<boolean> {
    const changed = await this.#run(
      `UPDATE sources SET last_heartbeat_at = ?, system_info = COALESCE(?, system_info),
       status_info = COALESCE(?, status_info) WHERE id = ?`,
      now,
      systemInfo ?? null,
      statusInfo ?? null,
      sourceId,
    );
    return changed > 0;
  }

  async describeSources(query: SourceQuery): Promise<{ total: number; items: SourceRecord[] }> {
    const where = sourceWhere(query);
    const describe = () =>
      this.#op('read', async (q) => {
        const total = Number((await q(`SELECT COUNT(*) AS n FROM sources ${where.sql}`, ...where.params)).rows[0].n);
        const rows = await q(`SELECT * FROM sources ${where.sql} ORDER BY seq DESC LIMIT ? OFFSET ?`, ...where.params, query.limit, query.offset);
        return { total, items: rows.rows.map(sourceFromRow) };
      });
    return query.ids !== undefined && query.offset <= CHEAP_OFFSET ? describe() : this.#heavily(describe);
  }

  /**
   * Lists whose cost grows with the data share a few connections, so that however many run at
   * once the rest of the pool stays free for everything else; each waits at most the store timeout.
   */
  #heavily<T>(work: () => Promise<T>): Promise<T> {
    return this.#heavy.run(Date.now() + this.#timeoutMs, () => new StoreUnavailableError(new DeadlineExceeded()), work);
  }

  async modifySource(id: string, patch: { name?: string; description?: string }): Promise<boolean> {
    const changed = await this.#run(
      'UPDATE sources SET name = COALESCE(?, name), description = COALESCE(?, description) WHERE id = ?',
      patch.name ?? null,
      patch.description ?? null,
      id,
    );
    return changed > 0;
  }

  async deleteSource(id: string): Promise<boolean> {
    return (await this.#run('DELETE FROM sources WHERE id = ?', id)) > 0;
  }

  async resealSecrets(reseal: (sealed: string, recordId: string) => string): Promise<number> {
    // An administrative rewrite of every row: allowed far longer than a request.
    return this.#op(
      'tx',
      async (q) => {
        let n = 0;
        for (const r of (await q('SELECT id, secret_sealed FROM access_keys FOR UPDATE')).rows) {
          n += (await q('UPDATE access_keys SET secret_sealed = ? WHERE id = ?', reseal(String(r.secret_sealed), String(r.id)), r.id)).rowCount ?? 0;
        }
        for (const r of (await q('SELECT id, code_sealed FROM access_tokens FOR UPDATE')).rows) {
          n += (await q('UPDATE access_tokens SET code_sealed = ? WHERE id = ?', reseal(String(r.code_sealed), String(r.id)), r.id)).rowCount ?? 0;
        }
        for (const r of (await q('SELECT id, key_id, key_sealed FROM sources FOR UPDATE')).rows) {
          n += (await q('UPDATE sources SET key_sealed = ? WHERE id = ?', reseal(String(r.key_sealed), String(r.key_id)), r.id)).rowCount ?? 0;
        }
        return n;
      },
      Math.max(this.#timeoutMs, 600_000),
    );
  }
}
