import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { readRootCredentials } from '../src/bootstrap.ts';
import { newMasterKeyText } from '../src/crypto/master-key.ts';
import { SQLITE_MIGRATIONS } from '../src/store/sqlite/migrations.ts';
import { type ServerProcess, SMCD_BIN, startServerProcess } from './helpers/process-server.ts';
import { runProcess } from './helpers/run-process.ts';
import { tempDir } from './helpers/server.ts';
import { type Creds, callV1 } from './helpers/sign.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const smcd = (...args: string[]) => runProcess(process.execPath, [SMCD_BIN, ...args], { env: { ...process.env, SMCD_MASTER_KEY: '' } });
const oneLine = (text: string) => text.trim().split('\n').length === 1;
/**
 * What a refusal must leave alone: the names in the directory and each file's inode, size and
 * bytes; of SQLite's `-shm` (the WAL index a running server rewrites as it reads: its webhook
 * dispatcher and sweeps read the store every second) only the name, inode and size.
 */
const snapshot = (dir: string) =>
  existsSync(dir)
    ? readdirSync(dir)
        .sort()
        .map((name) => {
          const s = statSync(join(dir, name));
          const bytes = name.endsWith('-shm') ? '' : readFileSync(join(dir, name)).toString('base64');
          return `${name}:${s.ino}:${s.size}:${bytes}`;
        })
    : [];

describe('smcd backup under write load, then smcd restore', () => {
  const base = tempDir('smcd-backup-');
  after(() => rmSync(base, { recursive: true, force: true }));
  const dirA = join(base, 'a');
  const dirB = join(base, 'b');
  const file = join(base, 'smcd-backup.db');

  it('a backup taken while a server writes holds every code acknowledged before it; restored elsewhere, the codes list and import', async () => {
    const servers: ServerProcess[] = [];
    try {
      const a = await startServerProcess(['--data-dir', dirA]);
      servers.push(a);
      const c = readRootCredentials(dirA)!;
      const root = { id: c.AccessKeyId, secret: c.AccessKeySecret };

      const acked: Array<Creds & { at: number }> = [];
      let stop = false;
      const worker = async () => {
        while (!stop) {
          try {
            const r = await callV1(a.url, root, 'CreateAccessToken', { Count: '3' }, { method: 'POST' });
            if (r.status === 200) acked.push({ id: r.body.AccessTokenId, secret: r.body.AccessTokenCode, at: Date.now() });
          } catch {
            /* in flight: may or may not be in the backup */
          }
        }
      };
      const workers = Array.from({ length: 8 }, () => worker());
      const deadline = Date.now() + 10_000;
      while (acked.length < 40 && Date.now() < deadline) await sleep(20);
      const backupStarted = Date.now();
      const backup = await smcd('backup', file, '--data-dir', dirA);
      const backupEnded = Date.now();
      await sleep(300);
      stop = true;
      await Promise.all(workers);
      const before = acked.filter((t) => t.at < backupStarted);
      const afterwards = acked.length - before.length;
      const later = acked.filter((t) => t.at > backupEnded);
      assert.equal(backup.code, 0, backup.stderr);
      assert.ok(
        before.length > 20 && later.length > 0,
        `load ran during the backup: ${before.length} codes before it, ${afterwards} after it started`,
      );
      assert.match(backup.stdout, new RegExp(`wrote ${file} \\(\\d+ bytes\\)`));
      assert.match(backup.stdout, /master\.key/, 'the backup reminds to keep the master key');
      assert.equal(statSync(file).mode & 0o777, 0o600, 'the backup holds sealed secrets: 0600');
      assert.deepEqual(readdirSync(base).sort(), ['a', 'smcd-backup.db'], 'no temporary file left behind');

      // An existing file is not replaced without --force.
      const bytes = readFileSync(file);
      const again = await smcd('backup', file, '--data-dir', dirA);
      assert.equal(again.code, 1);
      assert.ok(oneLine(again.stderr) && /exists; pass --force/.test(again.stderr), again.stderr);
      assert.deepEqual(readFileSync(file), bytes, 'the existing backup is untouched');

      // Never under a running server, not even with --force.
      const running = snapshot(dirA);
      const onRunning = await smcd('restore', file, '--data-dir', dirA, '--force');
      assert.equal(onRunning.code, 1, onRunning.stdout);
      assert.ok(oneLine(onRunning.stderr) && /in use/.test(onRunning.stderr), onRunning.stderr);
      assert.deepEqual(snapshot(dirA), running, "nothing in the running server's data dir changed");

      // The master key must come with the backup: missing, then wrong, both refused.
      const noKey = await smcd('restore', file, '--data-dir', dirB);
      assert.equal(noKey.code, 1);
      assert.ok(oneLine(noKey.stderr) && /no master key/.test(noKey.stderr), noKey.stderr);
      assert.ok(!existsSync(dirB), 'a refused restore creates nothing');
      mkdirSync(dirB, { recursive: true, mode: 0o700 });
      writeFileSync(join(dirB, 'master.key'), `${newMasterKeyText()}\n`, { mode: 0o600 });
      const wrongKey = await smcd('restore', file, '--data-dir', dirB);
      assert.equal(wrongKey.code, 1);
      assert.ok(oneLine(wrongKey.stderr) && /not the one the backup was written with/.test(wrongKey.stderr), wrongKey.stderr);
      assert.deepEqual(readdirSync(dirB), ['master.key'], 'a refused restore writes nothing');

      copyFileSync(join(dirA, 'master.key'), join(dirB, 'master.key'));
      const restored = await smcd('restore', file, '--data-dir', dirB);
      assert.equal(restored.code, 0, restored.stderr);
      assert.equal(statSync(join(dirB, 'smcd.db')).mode & 0o777, 0o600);
      assert.deepEqual(readdirSync(dirB).sort(), ['master.key', 'smcd.db']);
      const twice = await smcd('restore', file, '--data-dir', dirB);
      assert.equal(twice.code, 1);
      assert.ok(oneLine(twice.stderr) && /already exists.*--force/.test(twice.stderr), twice.stderr);

      // The restored server answers with the root key of the original (its sealed secret survived too).
      const b = await startServerProcess(['--data-dir', dirB]);
      servers.push(b);
      for (let i = 0; i < before.length; i += 50) {
        const batch = before.slice(i, i + 50);
        const params = Object.fromEntries(batch.map((t, j) => [`AccessTokenId.${j + 1}`, t.id]));
        const r = await callV1(b.url, root, 'ListAccessTokens', { ...params, PageSize: '50' });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.body.TotalCount, batch.length, 'every code acknowledged before the backup is in it');
      }
      const code = before[before.length - 1]!;
      const imported = await callV1(b.url, code, 'ImportSourceServer', { MachineId: 'restored-machine' }, { method: 'POST' });
      assert.equal(imported.status, 200, `a restored code signs an import: ${imported.text}`);

      // A crashed server's data dir: its WAL holds writes the backup has not; restore with --force
      // puts the backup in place, and none of the old journals is replayed onto it.
      a.child.kill('SIGKILL');
      await a.stop();
      assert.ok(existsSync(join(dirA, 'smcd.db-wal')), 'the killed server left its WAL behind');
      const overCrashed = await smcd('restore', file, '--data-dir', dirA, '--force');
      assert.equal(overCrashed.code, 0, overCrashed.stderr);
      assert.ok(!existsSync(join(dirA, 'smcd.db-wal')) && !existsSync(join(dirA, 'smcd.db-shm')), 'no stale journal left');
      const a2 = await startServerProcess(['--data-dir', dirA]);
      servers.push(a2);
      const gone = await callV1(a2.url, root, 'ListAccessTokens', { 'AccessTokenId.1': later[0]!.id });
      assert.equal(gone.body.TotalCount, 0, 'a code created after the backup ended is not in the restored database');
      const kept = await callV1(a2.url, root, 'ListAccessTokens', { 'AccessTokenId.1': code.id });
      assert.equal(kept.body.TotalCount, 1);
      console.log(`${before.length} codes acknowledged before the backup, ${afterwards} after it started; all of the first restored`);
    } finally {
      for (const s of servers) await s.stop();
    }
  });

  it('a file that is not an smcd database, or one from a newer smcd, is refused and nothing is written', async () => {
    const dirC = join(base, 'c');
    mkdirSync(dirC, { mode: 0o700 });
    copyFileSync(join(dirA, 'master.key'), join(dirC, 'master.key'));
    const garbage = join(base, 'garbage.db');
    writeFileSync(garbage, 'SQLite format 3\0 but not really, just some bytes that look like the start of a database '.repeat(100));
    const r = await smcd('restore', garbage, '--data-dir', dirC, '--force');
    assert.equal(r.code, 1);
    assert.ok(oneLine(r.stderr) && /not an smcd backup/.test(r.stderr), r.stderr);
    assert.deepEqual(readdirSync(dirC), ['master.key']);

    const notSmcd = join(base, 'other.db');
    const other = new Database(notSmcd);
    other.exec('CREATE TABLE things (id INTEGER PRIMARY KEY)');
    other.close();
    const r2 = await smcd('restore', notSmcd, '--data-dir', dirC);
    assert.equal(r2.code, 1);
    assert.ok(oneLine(r2.stderr) && /not an smcd backup: it has no meta table/.test(r2.stderr), r2.stderr);

    const newer = join(base, 'newer.db');
    copyFileSync(file, newer);
    const db = new Database(newer);
    db.pragma(`user_version = ${SQLITE_MIGRATIONS.length + 1}`);
    db.close();
    const r3 = await smcd('restore', newer, '--data-dir', dirC);
    assert.equal(r3.code, 1);
    assert.ok(oneLine(r3.stderr) && /newer than this smcd knows/.test(r3.stderr), r3.stderr);
    assert.deepEqual(readdirSync(dirC), ['master.key'], 'refused restores write nothing');
  });

  it('PostgreSQL is pointed to pg_dump', async () => {
    const r = await smcd('backup', join(base, 'pg.db'), '--database', 'postgres://smcd@127.0.0.1:1/smcd');
    assert.equal(r.code, 2);
    assert.ok(oneLine(r.stderr) && /pg_dump/.test(r.stderr), r.stderr);
  });
});
