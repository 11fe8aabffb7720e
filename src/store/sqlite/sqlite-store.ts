import Database from 'better-sqlite3';
import { closeSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
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
  type TokenQuery,
} from '../store.ts';
import { SQLITE_MIGRATIONS } from './migrations.ts';
import { SqliteReadPool } from './read-pool.ts';

type Row = Record<string, unknown>;

/** Refuses a database file that exists but is empty: truncated or never finished, not a new database. */
function checkDatabaseFile(path: string): void {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new StoreOpenError(`cannot create the data directory ${dirname(path)} (${(err as NodeJS.ErrnoException).code}): check the path and its permissions.`);
  }
  const size = statSync(path, { throwIfNoEntry: false })?.size;
  if (size === undefined) {
    // A new database is made 0600, like every file of the data directory (its journals follow its mode).
    try {
      closeSync(openSync(path, 'wx', 0o600));
    } catch {
      /* another process created it first, or SQLite will say why it cannot */
    }
    return;
  }
  if (size === 0) {
    throw new StoreOpenError(
      `The database ${path} is empty (0 bytes): it was truncated or never finished. Restore it from a backup (smcd restore), or delete it to start a new, empty database.`,
    );
  }
  const expected = headerSize(path);
  if (expected !== undefined && expected > size) {
    throw new StoreOpenError(
      `The database ${path} is damaged (truncated: ${size} bytes of ${expected}). Restore it from a backup (smcd restore); keep the damaged file for inspection.`,
    );
  }
}

/**
 * The size the database header says the file has (page size x page count), when the
 * header vouches for that count (https://www.sqlite.org/fileformat2.html, "In-header
 * database size"). A healthy file is never shorter: checkpoints write pages before the header.
 */
function headerSize(path: string): number | undefined {
  const header = Buffer.alloc(100);
  const fd = openSync(path, 'r');
  try {
    if (readSync(fd, header, 0, 100, 0) < 100) return undefined;
  } finally {
    closeSync(fd);
  }
  if (header.toString('latin1', 0, 16) !== 'SQLite format 3\0') return undefined;
  const raw = header.readUInt16BE(16);
  const pageSize = raw === 1 ? 65_536 : raw;
  const pages = header.readUInt32BE(28);
  const valid = pages > 0 && header.readUInt32BE(24) === header.readUInt32BE(92);
  return valid ? pages * pageSize : undefined;
}

/** SQLite's refusals at start-up, as one line that names the file and what to do. */
function openError(err: unknown, path: string): unknown {
  if (err instanceof StoreOpenError) return err;
  const code = String((err as { code?: unknown })?.code ?? '');
  const message = (err as Error)?.message ?? String(err);
  if (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT'))
    return new StoreOpenError(`The database ${path} is damaged (${message}). Restore it from a backup (smcd restore); keep the damaged file for inspection.`);
  if (code.startsWith('SQLITE_CANTOPEN') || code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_PERM') || code.startsWith('SQLITE_IOERR'))
    return new StoreOpenError(`cannot open the database ${path} (${message}): check that the file and its directory exist and smcd may write them.`);
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'))
    return new StoreOpenError(`The database ${path} is locked by another process (${message}): a restore or another tool may be running.`);
  return err;
}

/** The group-commit transaction of the current event-loop turn. */
interface OpenBatch {
  /** Writes that ran in it. */
  size: number;
  committed: Array<() => void>;
  failed: Array<(err: unknown) => void>;
}

/** Pages up to this offset of an unfiltered list are cheap enough for the event loop. */
const CHEAP_OFFSET = 1_000;

/** How many distinct statements are kept prepared (the SQL texts are few; IN lists vary). */
const STATEMENT_CACHE_SIZE = 500;

/**
 * Embedded SQLite (WAL, synchronous=FULL). Writes are group-committed: the first
 * write of a turn of the event loop opens a transaction (BEGIN IMMEDIATE), every
 * write of that turn runs in it at once, each in its own savepoint (a failing
 * write rolls back alone), and the transaction is committed - one fsync - when
 * the turn ends (setImmediate). A write's promise resolves only after that
 * commit: a resolved write is on disk.
 *
 * Reads on this connection see the open transaction's writes before they are
 * committed. Whoever answers a client from what it read must therefore wait for
 * settled() first; src/rpc does, for every response (EarlyNonceStore).
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  readonly description: string;
  readonly #db: Database.Database;
  readonly #statements = new Map<string, Database.Statement>();
  readonly #tx: Record<'begin' | 'commit' | 'rollback' | 'savepoint' | 'release' | 'rollbackTo', Database.Statement>;
  #batch?: OpenBatch;
  /** Set for the rest of a turn whose transaction SQLite rolled back mid-way: settled() fails. */
  #aborted?: { error: unknown };
  #closed = false;
  /** The read worker for list queries that grow with the data; none for an in-memory database. */
  readonly #reads?: SqliteReadPool;
  /** Sizes of the last group commits, for /metrics. */
  onBatch?: (size: number) => void;

  constructor(path: string, options: { timeoutMs?: number } = {}) {
    this.description = `sqlite:${path}`;
    if (path !== ':memory:') checkDatabaseFile(path);
    let db: Database.Database | undefined;
    try {
      db = new Database(path);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('busy_timeout = 5000');
      db.pragma('foreign_keys = ON');
      this.#db = db;
      this.#migrate(path);
    } catch (err) {
      db?.close();
      throw openError(err, path);
    }
    if (path !== ':memory:') this.#reads = new SqliteReadPool(path, { timeoutMs: options.timeoutMs ?? 5_000, maxQueued: 256 });
    this.#tx = {
      begin: this.#db.prepare('BEGIN IMMEDIATE'),
      commit: this.#db.prepare('COMMIT'),
      rollback: this.#db.prepare('ROLLBACK'),
      savepoint: this.#db.prepare('SAVEPOINT write'),
      release: this.#db.prepare('RELEASE write'),
      rollbackTo: this.#db.prepare('ROLLBACK TO write'),
    };
  }

  #migrate(path: string): void {
    // BEGIN IMMEDIATE takes the write lock, so two processes starting at once
    // apply each step once.
    const step = this.#db.transaction(() => {
      const version = this.#db.pragma('user_version', { simple: true }) as number;
      if (version > SQLITE_MIGRATIONS.length) {
        throw new StoreOpenError(
          `The database ${path} has schema version ${version}, newer than this smcd knows (${SQLITE_MIGRATIONS.length}): it was written by a newer smcd. Run that version, or restore a backup taken before the upgrade.`,
        );
      }
      if (version === SQLITE_MIGRATIONS.length) return false;
      this.#db.exec(SQLITE_MIGRATIONS[version]);
      this.#db.pragma(`user_version = ${version + 1}`);
      return true;
    });
    while (step.immediate()) {
      /* next step */
    }
  }

  /** The turn's open transaction; the first write of a turn begins it and schedules its commit. */
  #openBatch(): OpenBatch {
    if (this.#batch) return this.#batch;
    this.#tx.begin.run();
    const batch: OpenBatch = { size: 0, committed: [], failed: [] };
    this.#batch = batch;
    setImmediate(() => this.#commit(batch));
    return batch;
  }

  #commit(batch: OpenBatch): void {
    if (this.#batch !== batch) return; // already ended by an error
    this.#batch = undefined;
    try {
      this.#tx.commit.run();
    } catch (err) {
      if (this.#db.inTransaction) this.#tx.rollback.run();
      for (const fail of batch.failed) fail(err);
      return;
    }
    this.onBatch?.(batch.size);
    for (const done of batch.committed) done();
  }

  /**
   * Runs a write now, in the open transaction and its own savepoint. A write of
   * `oneStatement` needs no savepoint: SQLite undoes a failed statement by itself.
   */
  #execute<T>(run: () => T, oneStatement = false): { batch: OpenBatch; value: T } {
    if (this.#closed) throw new Error('the store is closed');
    const batch = this.#openBatch();
    if (!oneStatement) this.#tx.savepoint.run();
    try {
      const value = run();
      if (!oneStatement) this.#tx.release.run();
      batch.size++;
      return { batch, value };
    } catch (err) {
      if (this.#db.inTransaction) {
        if (!oneStatement) {
          this.#tx.rollbackTo.run();
          this.#tx.release.run();
        }
      } else if (this.#batch === batch) {
        // SQLite rolled the whole transaction back (disk full, I/O error): every write in it
        // is lost, also nonces already claimed, whose requests learn it from settled().
        this.#batch = undefined;
        this.#aborted = { error: err };
        setImmediate(() => {
          this.#aborted = undefined;
        });
        for (const fail of batch.failed) fail(err);
      }
      throw err;
    }
  }

  #write<T>(run: () => T, oneStatement = false): Promise<T> {
    let executed: { batch: OpenBatch; value: T };
    try {
      executed = this.#execute(run, oneStatement);
    } catch (err) {
      return Promise.reject(err);
    }
    const { batch, value } = executed;
    return new Promise<T>((resolve, reject) => {
      batch.committed.push(() => resolve(value));
      batch.failed.push(reject);
    });
  }

  /**
   * Resolves once every write made so far is committed (at once when none is
   * pending); rejects when their transaction failed. Undefined when nothing is pending.
   */
  settled(): Promise<void> | undefined {
    if (this.#aborted) return Promise.reject(this.#aborted.error);
    const batch = this.#batch;
    if (!batch) return undefined;
    return new Promise<void>((resolve, reject) => {
      batch.committed.push(resolve);
      batch.failed.push(reject);
    });
  }

  #statement(sql: string): Database.Statement {
    let statement = this.#statements.get(sql);
    if (!statement) {
      if (this.#statements.size >= STATEMENT_CACHE_SIZE) this.#statements.clear();
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  #get(sql: string, ...params: unknown[]): Row | undefined {
    return this.#statement(sql).get(...params) as Row | undefined;
  }

  #all(sql: string, ...params: unknown[]): Row[] {
    return this.#statement(sql).all(...params) as Row[];
  }

  #run(sql: string, ...params: unknown[]): number {
    return this.#statement(sql).run(...params).changes;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    // Let the open transaction commit (or fail) before closing.
    while (this.#batch) {
      const batch = this.#batch;
      await new Promise<void>((resolve) => {
        batch.committed.push(resolve);
        batch.failed.push(() => resolve());
      });
    }
    this.#closed = true;
    await this.#reads?.close();
    this.#db.close();
  }

  async ping(): Promise<void> {
    this.#get('SELECT 1 AS ok');
  }

  async getMeta(key: string): Promise<string | undefined> {
    const row = this.#get('SELECT value FROM meta WHERE key = ?', key);
    return row ? String(row.value) : undefined;
  }

  setMeta(key: string, value: string): Promise<void> {
    return this.#write(() => {
      this.#run('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value', key, value);
    });
  }

  putMetaIfAbsent(key: string, value: string): Promise<string> {
    return this.#write(() => {
      this.#run('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING', key, value);
      return String(this.#get('SELECT value FROM meta WHERE key = ?', key)!.value);
    });
  }

  insertAccessKey(key: AccessKeyRecord): Promise<boolean> {
    return this.#write(() => this.#run(INSERT_ACCESS_KEY, ...accessKeyToRow(key)) > 0);
  }

  async getRootAccessKey(): Promise<AccessKeyRecord | undefined> {
    const row = this.#get('SELECT * FROM access_keys WHERE is_root = 1');
    return row && accessKeyFromRow(row);
  }

  async getAccessKey(id: string): Promise<AccessKeyRecord | undefined> {
    const row = this.#get('SELECT * FROM access_keys WHERE id = ?', id);
    return row && accessKeyFromRow(row);
  }

  async listAccessKeys(): Promise<AccessKeyRecord[]> {
    return this.#all('SELECT * FROM access_keys ORDER BY created_at, id').map(accessKeyFromRow);
  }

  setAccessKeyEnabled(id: string, enabled: boolean): Promise<boolean> {
    return this.#write(() => this.#run('UPDATE access_keys SET enabled = ? WHERE id = ?', enabled ? 1 : 0, id) > 0);
  }

  setAccessKeySecret(id: string, secretSealed: string): Promise<boolean> {
    return this.#write(() => this.#run('UPDATE access_keys SET secret_sealed = ? WHERE id = ?', secretSealed, id) > 0);
  }

  deleteAccessKey(id: string): Promise<boolean> {
    return this.#write(() => this.#run('DELETE FROM access_keys WHERE id = ?', id) > 0);
  }

  #recordNonce(keyId: string, nonce: string, now: number, expiresAt: number): boolean {
    // One statement: a live row refuses; an expired row for the same nonce is taken over, not a replay.
    return (
      this.#run(
        `INSERT INTO nonces (key_id, nonce, expires_at) VALUES (?, ?, ?)
         ON CONFLICT (key_id, nonce) DO UPDATE SET expires_at = excluded.expires_at WHERE nonces.expires_at <= ?`,
        keyId,
        nonce,
        expiresAt,
        now,
      ) > 0
    );
  }

  useNonce(keyId: string, nonce: string, now: number, expiresAt: number): Promise<boolean> {
    return this.#write(() => this.#recordNonce(keyId, nonce, now, expiresAt), true);
  }

  /**
   * useNonce answered at once, before the nonce is on disk: it is in the open
   * transaction, so the request's own write joins the same commit (one fsync per
   * request instead of two). The caller must await settled() before it answers.
   */
  claimNonce(keyId: string, nonce: string, now: number, expiresAt: number): boolean {
    return this.#execute(() => this.#recordNonce(keyId, nonce, now, expiresAt), true).value;
  }

  purgeExpired(now: number): Promise<void> {
    return this.#write(() => {
      this.#run('DELETE FROM nonces WHERE expires_at <= ?', now);
      this.#run('DELETE FROM client_tokens WHERE expires_at <= ?', now);
    });
  }

  createAccessToken(token: AccessTokenRecord, idem?: IdempotencyKey): Promise<CreateTokenOutcome> {
    if (!idem) {
      return this.#write((): CreateTokenOutcome => {
        this.#run(INSERT_ACCESS_TOKEN, ...accessTokenToRow(token));
        return { outcome: 'created', token };
      }, true);
    }
    return this.#write((): CreateTokenOutcome => {
      const prior = this.#get(
        'SELECT fingerprint, access_token_id FROM client_tokens WHERE owner_key_id = ? AND client_token = ? AND expires_at > ?',
        idem.ownerKeyId,
        idem.clientToken,
        token.createdAt,
      );
      if (prior) {
        return prior.fingerprint === idem.fingerprint
          ? { outcome: 'replayed', tokenId: String(prior.access_token_id) }
          : { outcome: 'mismatch' };
      }
      this.#run(
        `INSERT INTO client_tokens (owner_key_id, client_token, fingerprint, access_token_id, expires_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (owner_key_id, client_token) DO UPDATE SET fingerprint = excluded.fingerprint,
         access_token_id = excluded.access_token_id, expires_at = excluded.expires_at`,
        idem.ownerKeyId,
        idem.clientToken,
        idem.fingerprint,
        token.id,
        idem.expiresAt,
      );
      this.#run(INSERT_ACCESS_TOKEN, ...accessTokenToRow(token));
      return { outcome: 'created', token };
    });
  }

  async getAccessToken(id: string): Promise<AccessTokenRecord | undefined> {
    const row = this.#get('SELECT * FROM access_tokens WHERE id = ?', id);
    return row && accessTokenFromRow(row);
  }

  async listAccessTokens(q: TokenQuery): Promise<{ total: number; items: AccessTokenRecord[] }> {
    const where = tokenWhere(q);
    // Unfiltered, the trigger-maintained counter answers in O(1) and the page is the newest
    // rows: cheap enough for the event loop. A filter's count grows with its matches: the
    // read worker runs it (and a deep page), off the loop and under a deadline.
    if (where.sql === '' && q.offset <= CHEAP_OFFSET) {
      const total = Number(this.#get('SELECT n FROM access_token_count WHERE one = 1')!.n);
      const items = this.#all('SELECT * FROM access_tokens ORDER BY seq DESC LIMIT ? OFFSET ?', q.limit, q.offset);
      return { total, items: items.map(accessTokenFromRow) };
    }
    if (q.ids && q.ids.length <= 50 && q.offset <= CHEAP_OFFSET) {
      const total = Number(this.#get(`SELECT COUNT(*) AS n FROM access_tokens ${where.sql}`, ...where.params)!.n);
      const items = this.#all(`SELECT * FROM access_tokens ${where.sql} ORDER BY seq DESC LIMIT ? OFFSET ?`, ...where.params, q.limit, q.offset);
      return { total, items: items.map(accessTokenFromRow) };
    }
    // The page follows one index the planner might not pick without statistics: a Status
    // walks (closed, seq) newest first; `expired` walks the table newest first.
    const source = q.ids || q.name !== undefined ? 'access_tokens' : q.status === 'expired' ? 'access_tokens NOT INDEXED' : q.status ? 'access_tokens INDEXED BY access_tokens_closed_seq' : 'access_tokens';
    const [count, page] = await this.#read([
      { sql: where.sql === '' ? 'SELECT n FROM access_token_count WHERE one = 1' : `SELECT COUNT(*) AS n FROM access_tokens ${where.sql}`, params: where.sql === '' ? [] : where.params },
      { sql: `SELECT * FROM ${source} ${where.sql} ORDER BY seq DESC LIMIT ? OFFSET ?`, params: [...where.params, q.limit, q.offset] },
    ]);
    return { total: Number(count![0]!.n), items: page!.map(accessTokenFromRow) };
  }

  disableAccessToken(id: string): Promise<boolean> {
    return this.#write(() => this.#run('UPDATE access_tokens SET disabled = 1 WHERE id = ?', id) > 0);
  }

  deleteAccessToken(id: string): Promise<boolean> {
    return this.#write(() => {
      this.#run('DELETE FROM token_uses WHERE access_token_id = ?', id);
      return this.#run('DELETE FROM access_tokens WHERE id = ?', id) > 0;
    });
  }

  importSource(req: ImportRequest): Promise<ImportOutcome> {
    // Runs inside the group-commit transaction, which holds SQLite's write lock:
    // no other writer, in this process or another, interleaves.
    return this.#write((): ImportOutcome => {
      const row = this.#get('SELECT * FROM access_tokens WHERE id = ?', req.tokenId);
      if (!row) return { outcome: 'refused', reason: 'token-gone' };
      const refusal = req.refusal(accessTokenFromRow(row));
      if (refusal) return { outcome: 'refused', reason: refusal };
      const existing = this.#get('SELECT id, key_id, key_sealed FROM sources WHERE machine_id = ?', req.machineId);
      if (existing && !req.ownsSource(ownedSourceFromRow(existing))) {
        return { outcome: 'refused', reason: 'machine-in-use', sourceId: String(existing.id) };
      }
      const used = this.#get('SELECT 1 AS used FROM token_uses WHERE access_token_id = ? AND machine_id = ?', req.tokenId, req.machineId);
      if (!used) {
        const slot = this.#run(
          'UPDATE access_tokens SET registered_count = registered_count + 1 WHERE id = ? AND registered_count < count',
          req.tokenId,
        );
        if (slot === 0) return { outcome: 'refused', reason: 'count' };
        this.#run('INSERT INTO token_uses (access_token_id, machine_id, used_at) VALUES (?, ?, ?)', req.tokenId, req.machineId, req.now);
      }
      if (existing) {
        const keyId = String(existing.key_id);
        this.#run(
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
      this.#run(
        INSERT_SOURCE,
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
      return { outcome: 'imported', sourceId: req.newSourceId, keyId: req.newKeyId, usedSlot: !used, created: true };
    });
  }

  async getSource(id: string): Promise<SourceRecord | undefined> {
    const row = this.#get('SELECT * FROM sources WHERE id = ?', id);
    return row && sourceFromRow(row);
  }

  async getSourceByKeyId(keyId: string): Promise<SourceRecord | undefined> {
    const row = this.#get('SELECT * FROM sources WHERE key_id = ?', keyId);
    return row && sourceFromRow(row);
  }

  recordHeartbeat(sourceId: string, now: number, systemInfo?: string, statusInfo?: string): Promise<boolean> {
    return this.#write(
      () =>
        this.#run(
          `UPDATE sources SET last_heartbeat_at = ?, system_info = COALESCE(?, system_info),
           status_info = COALESCE(?, status_info) WHERE id = ?`,
          now,
          systemInfo ?? null,
          statusInfo ?? null,
          sourceId,
        ) > 0,
    );
  }

  async describeSources(q: SourceQuery): Promise<{ total: number; items: SourceRecord[] }> {
    const where = sourceWhere(q);
    if ((where.sql === '' || (q.ids && q.ids.length <= 50)) && q.offset <= CHEAP_OFFSET) {
      const total = Number(
        where.sql === ''
          ? this.#get('SELECT n FROM source_count WHERE one = 1')!.n
          : this.#get(`SELECT COUNT(*) AS n FROM sources ${where.sql}`, ...where.params)!.n,
      );
      const items = this.#all(`SELECT * FROM sources ${where.sql} ORDER BY seq DESC LIMIT ? OFFSET ?`, ...where.params, q.limit, q.offset);
      return { total, items: items.map(sourceFromRow) };
    }
    const [count, page] = await this.#read([
      { sql: where.sql === '' ? 'SELECT n FROM source_count WHERE one = 1' : `SELECT COUNT(*) AS n FROM sources ${where.sql}`, params: where.sql === '' ? [] : where.params },
      { sql: `SELECT * FROM sources ${where.sql} ORDER BY seq DESC LIMIT ? OFFSET ?`, params: [...where.params, q.limit, q.offset] },
    ]);
    return { total: Number(count![0]!.n), items: page!.map(sourceFromRow) };
  }

  /** Statements whose cost grows with the data: in the read worker, or here for an in-memory database. */
  #read(statements: Array<{ sql: string; params: unknown[] }>): Promise<Row[][]> {
    if (this.#reads) return this.#reads.run(statements);
    return Promise.resolve(statements.map(({ sql, params }) => this.#all(sql, ...params)));
  }

  modifySource(id: string, patch: { name?: string; description?: string }): Promise<boolean> {
    return this.#write(
      () =>
        this.#run(
          'UPDATE sources SET name = COALESCE(?, name), description = COALESCE(?, description) WHERE id = ?',
          patch.name ?? null,
          patch.description ?? null,
          id,
        ) > 0,
    );
  }

  deleteSource(id: string): Promise<boolean> {
    return this.#write(() => this.#run('DELETE FROM sources WHERE id = ?', id) > 0);
  }

  resealSecrets(reseal: (sealed: string, recordId: string) => string): Promise<number> {
    return this.#write(() => {
      let n = 0;
      for (const r of this.#all('SELECT id, secret_sealed FROM access_keys')) {
        n += this.#run('UPDATE access_keys SET secret_sealed = ? WHERE id = ?', reseal(String(r.secret_sealed), String(r.id)), r.id);
      }
      for (const r of this.#all('SELECT id, code_sealed FROM access_tokens')) {
        n += this.#run('UPDATE access_tokens SET code_sealed = ? WHERE id = ?', reseal(String(r.code_sealed), String(r.id)), r.id);
      }
      for (const r of this.#all('SELECT id, key_id, key_sealed FROM sources')) {
        n += this.#run('UPDATE sources SET key_sealed = ? WHERE id = ?', reseal(String(r.key_sealed), String(r.key_id)), r.id);
      }
      return n;
    });
  }
}
