import pg from 'pg';
import { StoreOpenError } from '../store.ts';
import { backoffMs, errorCode, MAX_ATTEMPTS, noop, RETRYABLE, sleep } from './connection.ts';
import { CREATE_SCHEMA_MIGRATIONS, POSTGRES_MIGRATIONS } from './migrations.ts';

const MIGRATION_TIMEOUT_MS = 60_000;

/**
 * Brings the schema up to date, safely when several nodes start at once and without
 * advisory locks: each step runs in one transaction that first inserts its version
 * into schema_migrations. A second node's insert waits for the first one's commit and
 * then fails on the primary key: the step is applied, so it rolls back and reads again.
 */
export async function migrate(url: string, timeoutMs: number): Promise<void> {
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
    for (const [i, statements] of POSTGRES_MIGRATIONS.entries()) {
      const version = i + 1;
      for (let attempt = 1; ; attempt++) {
        const seen = await client.query('SELECT 1 FROM schema_migrations WHERE version = $1', [version]);
        if (seen.rowCount) break;
        try {
          await client.query('BEGIN');
          await client.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [version, Date.now()]);
          for (const statement of statements) await client.query(statement);
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
