import assert from 'node:assert/strict';
import { chmodSync, cpSync, existsSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { createTestDatabase, postgresSkipReason, queryDatabase } from './helpers/postgres.ts';
import { SMCD_BIN } from './helpers/process-server.ts';
import { type Run, runProcess } from './helpers/run-process.ts';
import { tempDir } from './helpers/server.ts';

/** `smcd serve` on a data dir that must refuse to start: it exits, so a port is never held. */
const serve = (dir: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}) =>
  runProcess('/bin/sh', ['-c', `umask 022; exec "${process.execPath}" "${SMCD_BIN}" serve --port 0 --data-dir "${dir}" "$@"`, 'sh', ...extra], {
    env: { ...process.env, SMCD_LOG_LEVEL: 'info', ...env },
  });

/** The refusal: exit 1, one fatal line naming `file`, no stack trace anywhere. */
function assertRefused(run: Run, phrase: RegExp, file: string): void {
  assert.equal(run.code, 1, run.stdout + run.stderr);
  const lines = `${run.stdout}${run.stderr}`.split('\n').filter(Boolean);
  const fatal = lines.map((l) => JSON.parse(l)).filter((l) => l.level === 60);
  assert.equal(fatal.length, 1, lines.join('\n'));
  assert.match(fatal[0].msg, /^smcd cannot start: /);
  assert.match(fatal[0].msg, phrase);
  assert.ok(fatal[0].msg.includes(file), `the line names ${file}: ${fatal[0].msg}`);
  assert.ok(!/\n\s+at /.test(run.stdout + run.stderr) && !/"stack":"[^"]/.test(run.stdout), 'no stack trace');
}

/** A data dir of a server that ran once: master.key, root-credentials.json, smcd.db (mode 0600 each). */
async function initialised(): Promise<string> {
  const dir = tempDir('smcd-datadir-');
  const child = await import('./helpers/process-server.ts').then((m) => m.startServerProcess(['--data-dir', dir]));
  await child.stop();
  return dir;
}

describe('a damaged or mismatched data dir refuses to start with one clear line, and never overwrites a secret', () => {
  let pristine: string;
  const dirs: string[] = [];
  const copy = () => {
    const dir = tempDir('smcd-datadir-');
    cpSync(pristine, dir, { recursive: true });
    dirs.push(dir);
    return dir;
  };
  before(async () => {
    pristine = await initialised();
  });
  after(() => {
    for (const d of [pristine, ...dirs]) rmSync(d, { recursive: true, force: true });
  });

  it('a fresh start writes every file of the data dir 0600 in a 0700 directory, whatever the umask', () => {
    assert.equal(statSync(pristine).mode & 0o777, 0o700);
    for (const name of readdirSync(pristine)) assert.equal(statSync(join(pristine, name)).mode & 0o777, 0o600, name);
  });

  it('a zero-length database beside master.key and root credentials: refused, and root-credentials.json is untouched', async () => {
    const dir = copy();
    const creds = readFileSync(join(dir, 'root-credentials.json'), 'utf8');
    for (const f of readdirSync(dir)) if (f.startsWith('smcd.db-')) rmSync(join(dir, f));
    truncateSync(join(dir, 'smcd.db'), 0);
    assertRefused(await serve(dir), /is empty \(0 bytes\).*Restore it from a backup/, join(dir, 'smcd.db'));
    assert.equal(readFileSync(join(dir, 'root-credentials.json'), 'utf8'), creds);
  });

  it('no database at all, but root credentials: refused instead of a new root key written over them', async () => {
    const dir = copy();
    const creds = readFileSync(join(dir, 'root-credentials.json'), 'utf8');
    for (const f of readdirSync(dir)) if (f.startsWith('smcd.db')) rmSync(join(dir, f));
    assertRefused(await serve(dir), /exists, but the database has no root key.*move .* away/, join(dir, 'root-credentials.json'));
    assert.equal(readFileSync(join(dir, 'root-credentials.json'), 'utf8'), creds);
  });

  it('a SQLite schema newer than this smcd: refused', async () => {
    const dir = copy();
    const db = new Database(join(dir, 'smcd.db'));
    db.pragma('user_version = 99');
    db.close();
    assertRefused(await serve(dir), /schema version 99, newer than this smcd knows/, join(dir, 'smcd.db'));
  });

  it('a truncated database and one that is not a database at all: refused as damaged', async () => {
    const truncated = copy();
    truncateSync(join(truncated, 'smcd.db'), 8192);
    for (const f of readdirSync(truncated)) if (f.startsWith('smcd.db-')) rmSync(join(truncated, f));
    assertRefused(await serve(truncated), /is damaged .*Restore it from a backup/, join(truncated, 'smcd.db'));
    const garbage = copy();
    writeFileSync(join(garbage, 'smcd.db'), Buffer.alloc(4096, 0x5a));
    assertRefused(await serve(garbage), /is damaged \(file is not a database\)/, join(garbage, 'smcd.db'));
  });

  it('an empty, a garbage and a missing master key: refused; a missing one is not replaced by a new key', async () => {
    const empty = copy();
    writeFileSync(join(empty, 'master.key'), '');
    assertRefused(await serve(empty), /is empty: it must hold the master key/, join(empty, 'master.key'));
    const garbage = copy();
    writeFileSync(join(garbage, 'master.key'), 'not a key at all\n');
    assertRefused(await serve(garbage), /does not hold a master key/, join(garbage, 'master.key'));
    const missing = copy();
    rmSync(join(missing, 'master.key'));
    assertRefused(await serve(missing), /is missing, but the database was written under a master key/, join(missing, 'master.key'));
    assert.equal(existsSync(join(missing, 'master.key')), false, 'no new key was generated for a database written under another');
    const env = await serve(copy(), [], { SMCD_MASTER_KEY: 'zz' });
    assertRefused(env, /SMCD_MASTER_KEY does not hold a master key/, 'SMCD_MASTER_KEY');
  });

  it('a 0644 root-credentials.json: the server warns; rotating the root key replaces it with a 0600 file', async () => {
    const dir = copy();
    const path = join(dir, 'root-credentials.json');
    chmodSync(path, 0o644);
    const rotated = await runProcess(process.execPath, [SMCD_BIN, 'keys', 'rotate-root', '--data-dir', dir], {
      env: { ...process.env, SMCD_LOG_LEVEL: 'silent' },
    });
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.equal(statSync(path).mode & 0o777, 0o600, 'the new secret never lands in a file others may read');
    chmodSync(join(dir, 'master.key'), 0o640);
    const { startServerProcess } = await import('./helpers/process-server.ts');
    const server = await startServerProcess(['--data-dir', dir]);
    await server.stop();
    assert.ok(
      server.output.some((l) => l.includes('master.key may be read by other users of this machine: chmod 600 it')),
      server.output.join('\n'),
    );
  });

  it('the CLI on a damaged data dir says the same in one line, exit 1', async () => {
    const dir = copy();
    writeFileSync(join(dir, 'master.key'), 'x');
    const run = await runProcess(process.execPath, [SMCD_BIN, 'keys', 'list', '--data-dir', dir], {
      env: { ...process.env, SMCD_LOG_LEVEL: 'silent' },
    });
    assert.equal(run.code, 1);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.match(run.stderr, /^smcd keys: .*master\.key does not hold a master key/);
  });
});

describe('a PostgreSQL schema newer than this smcd refuses to start', { skip: await postgresSkipReason() }, () => {
  it('schema_migrations naming version 99: one line, exit 1', async () => {
    const db = await createTestDatabase();
    const dir = tempDir('smcd-datadir-');
    try {
      const { startServerProcess } = await import('./helpers/process-server.ts');
      await (await startServerProcess(['--data-dir', dir, '--database', db.url])).stop();
      await queryDatabase(db.url, 'INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)');
      assertRefused(await serve(dir, ['--database', db.url]), /schema is at version 99, newer than this smcd knows/, 'version 99');
    } finally {
      await db.drop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
