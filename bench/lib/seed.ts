import Database from 'better-sqlite3';
import pg from 'pg';
import { openStore } from '../../src/store/open-store.ts';
import { BENCH_ROOT } from './processes.ts';

/**
 * Puts `count` activation codes straight into the database, without the API:
 * one INSERT ... SELECT over a generated series. ListAccessTokens never decrypts,
 * so every row carries the same well-formed dummy sealed code.
 * Rows look like real ones: names from 100 different, 1-30 day lifetimes (some
 * expired), a few disabled, registered counts from 0 to Count.
 */
const SEALED_DUMMY = 'v2.AAAAAAAA.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
const DAY_MS = 86_400_000;

export async function seedSqlite(path: string, count: number): Promise<number> {
  // Opening the store once applies the schema, whatever version it is at.
  await (await openStore(`sqlite:${path}`)).close();
  const started = performance.now();
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  const now = Date.now();
  db.prepare(
    `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?)
     INSERT INTO access_tokens (id, code_sealed, name, description, count, registered_count, ttl_days, created_at,
       expires_at, disabled, ip_address_range, created_by)
     SELECT printf('at-seed%016d', x), ?, 'seed' || (x % 100), '', 100, x % 101, 1 + x % 30, ? - (? - x) * 1000,
       ? - (? - x) * 1000 + (1 + x % 30) * ?, CASE WHEN x % 50 = 0 THEN 1 ELSE 0 END, '', ?
     FROM c`,
  ).run(count, SEALED_DUMMY, now, count, now, count, DAY_MS, BENCH_ROOT.id);
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  return performance.now() - started;
}

export async function seedPostgres(url: string, count: number): Promise<number> {
  await (await openStore(url)).close();
  const started = performance.now();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const now = Date.now();
    await client.query(
      `INSERT INTO access_tokens (id, code_sealed, name, description, count, registered_count, ttl_days, created_at,
         expires_at, disabled, ip_address_range, created_by)
       SELECT 'at-seed' || lpad(x::text, 16, '0'), $2, 'seed' || (x % 100), '', 100, x % 101, 1 + x % 30,
         $3::bigint - ($1::bigint - x) * 1000, $3::bigint - ($1::bigint - x) * 1000 + (1 + x % 30) * $4::bigint,
         CASE WHEN x % 50 = 0 THEN 1 ELSE 0 END, '', $5
       FROM generate_series(1, $1::bigint) AS x`,
      [count, SEALED_DUMMY, now, DAY_MS, BENCH_ROOT.id],
    );
    // smcd keeps the unfiltered count in counter shards; rows put in behind its back are added there.
    await client.query('UPDATE access_token_counts SET n = n + $1 WHERE shard = 0', [count]);
    await client.query('VACUUM ANALYZE access_tokens');
  } finally {
    await client.end();
  }
  return performance.now() - started;
}
