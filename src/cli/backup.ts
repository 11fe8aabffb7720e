import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, copyFileSync, existsSync, fsyncSync, linkSync, mkdirSync, openSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { MASTER_KEY_CHECK, StartupError } from '../bootstrap.ts';
import { loadKeyring, MasterKeyError, masterKeyPath } from '../crypto/master-key.ts';
import { masterKey } from '../crypto/secret-box.ts';
import { SQLITE_MIGRATIONS } from '../store/sqlite/migrations.ts';
import { type Command, EXIT, UsageError } from './command.ts';
import { summaryOf } from './commands.ts';
import { databaseUrl, dataOptions } from './data-options.ts';

/** The SQLite file behind a database URL; undefined for PostgreSQL, which has its own tools. */
function sqlitePath(url: string): string | undefined {
  if (/^postgres(ql)?:\/\//.test(url)) return undefined;
  return url.startsWith('sqlite:') ? url.slice('sqlite:'.length) : url;
}

const POSTGRES_HINT = 'the database is PostgreSQL: use pg_dump / pg_restore or continuous archiving (README, "Backup and restore")';

/** SQLite and the addon loader explain over several lines; the command prints one. */
const firstLine = (err: unknown) => ((err as Error)?.message ?? String(err)).split('\n')[0] ?? '';

const tempNextTo = (path: string) => `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;

/** A database file and the journals SQLite keeps next to it. */
function removeWithJournals(path: string): void {
  for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${path}${suffix}`, { force: true });
}

function fsyncFile(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function syncDir(path: string): void {
  try {
    fsyncFile(dirname(path));
  } catch {
    /* some file systems cannot sync a directory; the rename is still atomic */
  }
}

/** What a backup file says about itself, once it passed checkBackupFile. */
export interface BackupFacts {
  schemaVersion: number;
  masterKeyFingerprint: string;
}

/**
 * Is this an smcd SQLite database this smcd can serve? Reads the file (a private copy: SQLite
 * may write journals next to it) and says why not in one line.
 */
export function checkBackupFile(path: string): BackupFacts {
  let db: Database.Database;
  try {
    db = new Database(path, { fileMustExist: true });
  } catch (err) {
    throw new StartupError(`cannot open the backup (${firstLine(err)})`);
  }
  try {
    const problem = (what: string) => new StartupError(`the file is not an smcd backup: ${what}`);
    let check: unknown;
    try {
      check = db.pragma('quick_check', { simple: true });
    } catch (err) {
      throw problem(firstLine(err));
    }
    if (check !== 'ok') throw problem(`the integrity check failed (${String(check)})`);
    const schemaVersion = db.pragma('user_version', { simple: true }) as number;
    if (schemaVersion > SQLITE_MIGRATIONS.length)
      throw new StartupError(
        `the backup has schema version ${schemaVersion}, newer than this smcd knows (${SQLITE_MIGRATIONS.length}): restore it with the smcd that wrote it`,
      );
    const hasMeta = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get() !== undefined;
    if (!hasMeta) throw problem('it has no meta table');
    const row = db.prepare('SELECT value FROM meta WHERE key = ?').get(MASTER_KEY_CHECK) as { value?: unknown } | undefined;
    if (typeof row?.value !== 'string') throw problem(`its meta table has no ${MASTER_KEY_CHECK}`);
    return { schemaVersion, masterKeyFingerprint: row.value };
  } finally {
    db.close();
  }
}

/** The fingerprints of the data dir's master keys (or SMCD_MASTER_KEY's): a backup must name one of them. */
function masterKeyFingerprints(dataDir: string, env = process.env): { fingerprints: string[]; origin: string } {
  try {
    const ring = loadKeyring(dataDir, env, { mayCreate: false });
    return { fingerprints: [ring.primary, ...ring.others].map((k) => masterKey(k).fingerprint), origin: ring.origin };
  } catch (err) {
    if (err instanceof MasterKeyError && !env.SMCD_MASTER_KEY && !existsSync(masterKeyPath(dataDir)))
      throw new StartupError(
        `there is no master key in ${dataDir}: copy the master.key kept with the backup to ${masterKeyPath(dataDir)} (or set SMCD_MASTER_KEY), then restore`,
      );
    if (err instanceof MasterKeyError) throw new StartupError(err.message);
    throw err;
  }
}

/**
 * Takes the database for this process alone, or refuses because another process has it open.
 * A connection in WAL mode keeps a shared lock on the database file for as long as it is open,
 * even idle; with locking_mode=EXCLUSIVE our first read needs the exclusive lock on that file,
 * so it fails (SQLITE_BUSY) while any server, read worker or tool holds the database.
 * Returns undefined when there is no database to protect (missing, or not a database at all).
 */
function takeDatabase(path: string): Database.Database | undefined {
  if (!existsSync(path)) return undefined;
  let db: Database.Database;
  try {
    db = new Database(path, { fileMustExist: true, timeout: 300 });
  } catch {
    return undefined;
  }
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.prepare('SELECT count(*) FROM sqlite_master').get();
    return db;
  } catch (err) {
    db.close();
    const code = String((err as { code?: unknown }).code ?? '');
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'))
      throw new StartupError(`the database ${path} is in use (a running smcd or another tool has it open): stop it first; nothing was changed`);
    return undefined; // damaged: no server can be running on it; --force may replace it
  }
}

export const backupCommand: Command = {
  name: 'backup',
  summary: summaryOf('backup'),
  usage: 'smcd backup <file> [--data-dir D] [--database sqlite:PATH] [--force]',
  example: 'smcd backup /backups/smcd-$(date +%F).db --data-dir /var/lib/smcd',
  options: {
    ...dataOptions,
    force: { type: 'boolean', description: 'Replace an existing file.' },
  },
  async run(values, positionals) {
    const [file, ...extra] = positionals;
    if (!file || extra.length) throw new UsageError('expected one backup file name');
    const source = sqlitePath(databaseUrl(values));
    if (source === undefined) {
      process.stderr.write(`smcd backup: ${POSTGRES_HINT}\n`);
      return EXIT.usage;
    }
    const dest = resolve(file);
    if (existsSync(dest) && values.force !== true) throw new StartupError(`${dest} exists; pass --force to replace it`);
    if (!existsSync(source)) throw new StartupError(`there is no database at ${source}: check --data-dir / --database`);
    const tmp = tempNextTo(dest);
    try {
      closeSync(openSync(tmp, 'wx', 0o600));
    } catch (err) {
      throw new StartupError(`cannot write next to ${dest} (${(err as NodeJS.ErrnoException).code}): check the directory`);
    }
    try {
      const db = new Database(source, { fileMustExist: true, timeout: 5_000 });
      try {
        // One step for the whole file: one read transaction, so one consistent snapshot; a server
        // writing meanwhile (WAL) is not blocked, and cannot make a many-step copy start over forever.
        await db.backup(tmp, { progress: () => 0x7fffffff });
      } finally {
        db.close();
      }
      for (const suffix of ['-wal', '-shm', '-journal']) rmSync(`${tmp}${suffix}`, { force: true });
      chmodSync(tmp, 0o600);
      fsyncFile(tmp);
      if (values.force === true) renameSync(tmp, dest);
      else linkSync(tmp, dest); // fails (EEXIST) rather than replace a file that appeared meanwhile
      syncDir(dest);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw new StartupError(`${dest} exists; pass --force to replace it`);
      if (err instanceof StartupError) throw err;
      throw new StartupError(`the backup failed (${firstLine(err)}); nothing was written to ${dest}`);
    } finally {
      removeWithJournals(tmp);
    }
    const keyAt = process.env.SMCD_MASTER_KEY ? 'SMCD_MASTER_KEY' : masterKeyPath(String(values['data-dir']));
    process.stdout.write(
      `wrote ${dest} (${statSync(dest).size} bytes)\n` +
        `The master key is not in the backup: keep ${keyAt} with it. Without that key the secrets in the backup cannot be read.\n`,
    );
    return EXIT.ok;
  },
};

export const restoreCommand: Command = {
  name: 'restore',
  summary: summaryOf('restore'),
  usage: 'smcd restore <file> [--data-dir D] [--database sqlite:PATH] [--force]',
  example: 'smcd restore /backups/smcd-2026-11-30.db --data-dir /var/lib/smcd --force',
  options: {
    ...dataOptions,
    force: { type: 'boolean', description: 'Replace an existing database (never one in use).' },
  },
  async run(values, positionals) {
    const [file, ...extra] = positionals;
    if (!file || extra.length) throw new UsageError('expected one backup file name');
    const dataDir = String(values['data-dir']);
    const target = sqlitePath(databaseUrl(values));
    if (target === undefined) {
      process.stderr.write(`smcd restore: ${POSTGRES_HINT}\n`);
      return EXIT.usage;
    }
    if (!existsSync(file)) throw new StartupError(`there is no file ${file}`);
    const keys = masterKeyFingerprints(dataDir);
    const held = takeDatabase(target);
    let tmp: string | undefined;
    try {
      if (existsSync(target) && values.force !== true)
        throw new StartupError(`a database already exists at ${target}; pass --force to replace it (it must not be in use)`);
      // Checked on a private copy next to the target: the backup itself is never opened for writing.
      tmp = tempNextTo(target);
      try {
        mkdirSync(dirname(target), { recursive: true, mode: 0o700 });
        copyFileSync(file, tmp);
      } catch (err) {
        throw new StartupError(`cannot copy ${file} to ${dirname(target)} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      }
      chmodSync(tmp, 0o600);
      const facts = checkBackupFile(tmp);
      for (const suffix of ['-wal', '-shm', '-journal']) rmSync(`${tmp}${suffix}`, { force: true });
      if (!keys.fingerprints.includes(facts.masterKeyFingerprint))
        throw new StartupError(
          `the master key from ${keys.origin} is not the one the backup was written with: put the master key kept with the backup in ${masterKeyPath(dataDir)} (or SMCD_MASTER_KEY)`,
        );
      fsyncFile(tmp);
      // The old database's journals belong to it: left behind, SQLite would replay them onto the restored file.
      held?.close();
      for (const suffix of ['-wal', '-shm', '-journal']) rmSync(`${target}${suffix}`, { force: true });
      renameSync(tmp, target);
      tmp = undefined;
      syncDir(target);
      process.stdout.write(`restored ${resolve(file)} to ${target} (schema version ${facts.schemaVersion}); start smcd serve on ${dataDir}\n`);
      return EXIT.ok;
    } finally {
      if (held?.open) held.close();
      if (tmp) removeWithJournals(tmp);
    }
  },
};
