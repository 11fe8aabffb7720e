import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { withAdmin } from '../../test/helpers/postgres.ts';

export interface BenchDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

const admin = <T>(adminUrl: string, run: (c: pg.Client) => Promise<T>): Promise<T> => withAdmin(run, adminUrl);

/** Why PostgreSQL scenarios cannot run, or undefined when they can. */
export async function postgresUnavailable(adminUrl: string): Promise<string | undefined> {
  try {
    await admin(adminUrl, (c) => c.query('SELECT 1'));
  } catch (err) {
    return `PostgreSQL is not reachable at ${new URL(adminUrl).host}: ${(err as Error).message}`;
  }
  const store = new URL('../../src/store/postgres/postgres-store.ts', import.meta.url);
  if (!existsSync(store)) return 'src/store/postgres/postgres-store.ts does not exist yet';
  return undefined;
}

/** A fresh, uniquely named database, dropped (even with connections open) by drop(). */
export async function createBenchDatabase(adminUrl: string): Promise<BenchDatabase> {
  const name = `smcd_bench_${randomBytes(6).toString('hex')}`;
  await admin(adminUrl, (c) => c.query(`CREATE DATABASE ${name}`));
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    name,
    drop: () => admin(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => {}),
  };
}

export function findPgbench(): string {
  for (const p of ['/usr/lib/postgresql/15/bin/pgbench', '/usr/bin/pgbench']) if (existsSync(p)) return p;
  return 'pgbench';
}

export interface PgbenchResult {
  tps: number;
  latencyAvgMs: number;
  transactions: number;
}

/**
 * pgbench inserting one row per transaction into a small table, with `clients`
 * connections: the PostgreSQL baseline for CreateAccessToken (one durable insert
 * per request, synchronous_commit as the server is configured).
 */
export async function runPgbench(db: BenchDatabase, clients: number, durationS: number, workDir: string): Promise<PgbenchResult> {
  await admin(db.url, (c) =>
    c.query('CREATE TABLE IF NOT EXISTS bench_insert (id BIGSERIAL PRIMARY KEY, client INTEGER NOT NULL, payload TEXT NOT NULL)'),
  );
  const script = join(workDir, 'insert-one-row.sql');
  writeFileSync(script, "INSERT INTO bench_insert (client, payload) VALUES (:client_id, 'at-0123456789abcdefghij');\n");
  const u = new URL(db.url);
  const args = [
    '-n', // no vacuum of the pgbench_* tables: this script does not use them
    '-c',
    String(clients),
    '-j',
    '2',
    '-T',
    String(durationS),
    '-f',
    script,
    '-h',
    u.hostname,
    '-p',
    u.port || '5432',
    '-U',
    decodeURIComponent(u.username || 'postgres'),
    db.name,
  ];
  const out = await new Promise<string>((resolve, reject) => {
    execFile(findPgbench(), args, { env: { ...process.env, PGPASSWORD: decodeURIComponent(u.password) } }, (err, stdout, stderr) =>
      err ? reject(new Error(`pgbench failed: ${stderr || err.message}`)) : resolve(stdout),
    );
  });
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? Number.NaN);
  return {
    tps: num(/tps = ([\d.]+) \(without initial connection time\)/),
    latencyAvgMs: num(/latency average = ([\d.]+) ms/),
    transactions: num(/number of transactions actually processed: (\d+)/),
  };
}
