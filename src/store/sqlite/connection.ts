import { closeSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { type StoreObserver, StoreOpenError, StoreUnavailableError } from '../store.ts';
import { SQLITE_MIGRATIONS } from './migrations.ts';

/** Refuses a database file that exists but is empty: truncated or never finished, not a new database. */
function checkDatabaseFile(path: string): void {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new StoreOpenError(
      `cannot create the data directory ${dirname(path)} (${(err as NodeJS.ErrnoException).code}): check the path and its permissions.`,
    );
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
    return new StoreOpenError(
      `The database ${path} is damaged (${message}). Restore it from a backup (smcd restore); keep the damaged file for inspection.`,
    );
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
  /** A write in it must survive a power loss: its commit is fsynced before anything resolves. */
  durable: boolean;
  committed: Array<() => void>;
  failed: Array<(err: unknown) => void>;
}

/**
 * fsync of a file, on libuv's thread pool: the event loop goes on meanwhile. A WAL file that
 * is gone was checkpointed into the database and removed, and a checkpoint syncs the database.
 */
async function syncFile(path: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** How many distinct statements are kept prepared (the SQL texts are few; IN lists vary). */
const STATEMENT_CACHE_SIZE = 500;

export type Row = Record<string, unknown>;

/** SQLite could not take its lock in time (another process holds it): the API answers 503. */
function busyToUnavailable(err: unknown): unknown {
  const code = String((err as { code?: unknown })?.code ?? '');
  return code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED') ? new StoreUnavailableError(err) : err;
}

/**
 * One SQLite connection (WAL) with group commit. The first write of a turn of the event loop
 * opens a transaction (BEGIN IMMEDIATE), every write of that turn runs in it at once, each in
 * its own savepoint (a failing write rolls back alone), and the transaction is committed when
 * the turn ends (setImmediate). A write's promise resolves only once its commit is on disk:
 * a resolved write is durable.
 *
 * The fsync is made off the event loop (issue 14). The connection runs synchronous=NORMAL, so
 * COMMIT hands the WAL frames to the operating system without waiting for the disk, and the
 * WAL file is then fsynced on libuv's thread pool; the batch's writes resolve when that fsync
 * returns. This is what synchronous=FULL does in WAL mode (one sync of the WAL after each
 * commit; checkpoints sync alike in both modes), without holding the loop for the disk. While
 * one fsync runs, later commits wait for the next, which covers all of them.
 *
 * Reads on this connection see the open transaction's writes before they are committed.
 * Whoever answers a client from what it read must therefore wait for settled() first;
 * src/rpc does, for every response.
 */
export class SqliteConnection {
  readonly path: string;
  readonly #db: Database.Database;
  readonly #statements = new Map<string, Database.Statement>();
  readonly #tx: Record<'begin' | 'commit' | 'rollback' | 'savepoint' | 'release' | 'rollbackTo', Database.Statement>;
  #batch?: OpenBatch;
  /** A file database's WAL, fsynced after commits; none in memory, where nothing is synced. */
  readonly #walPath?: string;
  /** Committed batches waiting for the next fsync of the WAL, and those the running one covers. */
  #unsynced: OpenBatch[] = [];
  #syncing: OpenBatch[] = [];
  /** Set for the rest of a turn whose transaction SQLite rolled back mid-way: settled() fails. */
  #aborted?: { error: unknown };
  #closed = false;
  observer?: StoreObserver;

  constructor(path: string) {
    this.path = path;
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
      if (path !== ':memory:') {
        db.pragma('synchronous = NORMAL');
        this.#walPath = `${path}-wal`;
      }
    } catch (err) {
      db?.close();
      throw openError(err, path);
    }
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
      const next = SQLITE_MIGRATIONS[version];
      if (next === undefined) return false;
      this.#db.exec(next);
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
    const batch: OpenBatch = { size: 0, durable: false, committed: [], failed: [] };
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
      const failure = busyToUnavailable(err);
      for (const fail of batch.failed) fail(failure);
      return;
    }
    this.observer?.groupCommit(batch.size);
    // A batch of lagging writes alone needs no fsync, unless an earlier one is still waiting
    // for its own: batches resolve in order, so it resolves with that fsync.
    if (!this.#walPath || (!batch.durable && this.#unsynced.length === 0 && this.#syncing.length === 0)) {
      for (const done of batch.committed) done();
      return;
    }
    this.#unsynced.push(batch);
    this.#syncWal();
  }

  /** Starts an fsync of the WAL for every committed batch waiting, unless one is running. */
  #syncWal(): void {
    if (this.#syncing.length > 0 || this.#unsynced.length === 0 || !this.#walPath) return;
    const batches = this.#unsynced;
    this.#syncing = batches;
    this.#unsynced = [];
    syncFile(this.#walPath).then(
      () => {
        this.#syncing = [];
        for (const batch of batches) for (const done of batch.committed) done();
        this.#syncWal();
      },
      (err) => {
        // Not known to be on disk: their requests are answered with an error, not a success.
        this.#syncing = [];
        for (const batch of batches) for (const fail of batch.failed) fail(err);
        this.#syncWal();
      },
    );
  }

  /**
   * Runs a write now, in the open transaction and its own savepoint. A write of
   * `oneStatement` needs no savepoint: SQLite undoes a failed statement by itself. One that is
   * not `durable` (API.md 5.1: a heartbeat's nonce) makes the batch wait for no fsync; it is
   * committed with the batch, so a kill -9 keeps it and a power loss may lose it.
   */
  execute<T>(run: () => T, oneStatement = false, durable = true): { batch: OpenBatch; value: T } {
    if (this.#closed) throw new Error('the store is closed');
    let batch: OpenBatch;
    try {
      batch = this.#openBatch();
    } catch (err) {
      throw busyToUnavailable(err);
    }
    if (!oneStatement) this.#tx.savepoint.run();
    try {
      const value = run();
      if (!oneStatement) this.#tx.release.run();
      batch.size++;
      if (durable) batch.durable = true;
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
      throw busyToUnavailable(err);
    }
  }

  /** A write in the open transaction; resolves once it is committed (and, when `durable`, on disk). */
  write<T>(run: () => T, oneStatement = false, durable = true): Promise<T> {
    let executed: { batch: OpenBatch; value: T };
    try {
      executed = this.execute(run, oneStatement, durable);
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
   * A write that need not survive a power loss, only a crash of smcd: heartbeat times and
   * heartbeat nonces, which API.md 5.1 lets lag. With no group commit open it runs at once in
   * its own transaction, committed without asking for an fsync (in WAL mode the commit is in the
   * operating system's hands when COMMIT returns, so a kill -9 keeps it; the next durable
   * commit's fsync covers it too). A fleet's heartbeats then cost the disk nothing and
   * never hold the event loop in fsync. With a group commit open, it joins it without making it durable.
   */
  writeUnsynced<T>(run: () => T): Promise<T> {
    if (this.#batch) return this.write(run, false, false);
    if (this.#closed) return Promise.reject(new Error('the store is closed'));
    try {
      this.#tx.begin.run();
      try {
        const value = run();
        this.#tx.commit.run();
        return Promise.resolve(value);
      } catch (err) {
        if (this.#db.inTransaction) this.#tx.rollback.run();
        throw err;
      }
    } catch (err) {
      return Promise.reject(busyToUnavailable(err));
    }
  }

  /** Resolves once every write made so far is committed (at once when none is pending); rejects when their transaction failed. */
  settled(): Promise<void> {
    if (this.#aborted) return Promise.reject(this.#aborted.error);
    // Batches become durable in order: waiting for the newest is waiting for all.
    const batch = this.#batch ?? this.#unsynced.at(-1) ?? this.#syncing.at(-1);
    if (!batch) return Promise.resolve();
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

  get(sql: string, ...params: unknown[]): Row | undefined {
    try {
      return this.#statement(sql).get(...params) as Row | undefined;
    } catch (err) {
      throw busyToUnavailable(err);
    }
  }

  all(sql: string, ...params: unknown[]): Row[] {
    try {
      return this.#statement(sql).all(...params) as Row[];
    } catch (err) {
      throw busyToUnavailable(err);
    }
  }

  /** A statement that changes rows; returns how many. Call it inside write()/execute(). */
  run(sql: string, ...params: unknown[]): number {
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
    // And for the fsync of what was committed.
    await this.settled().catch(() => {});
    this.#closed = true;
    this.#db.close();
  }
}
