import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The server the tests create their databases on (CI: .ci/run starts it). */
export const TEST_PG_URL = process.env.SMCD_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

/** Runs `run` on a short-lived connection to the admin database (the bench uses it too). */
export async function withAdmin<T>(run: (client: pg.Client) => Promise<T>, adminUrl = TEST_PG_URL): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 5_000 });
  client.on('error', () => {});
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end().catch(() => {});
  }
}

function databaseUrl(name: string): string {
  const u = new URL(TEST_PG_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

let probe: Promise<string | undefined> | undefined;

/**
 * Why PostgreSQL tests cannot run here, or undefined when they can. Under CI this is
 * always undefined: a missing server must fail the tests, not skip them.
 *
 *   describe('...', { skip: await postgresSkipReason() }, () => { ... })
 */
export function postgresSkipReason(): Promise<string | undefined> {
  probe ??= process.env.CI
    ? Promise.resolve(undefined)
    : withAdmin((c) => c.query('SELECT 1')).then(
        () => undefined,
        (err: Error) => `PostgreSQL is not reachable at ${new URL(TEST_PG_URL).host} (${err.message}); set SMCD_TEST_PG_URL or start it`,
      );
  return probe;
}

/** A new, uniquely named, empty database; `drop()` removes it even with connections left open. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `smcd_t_${randomBytes(8).toString('hex')}`;
  try {
    await withAdmin((c) => c.query(`CREATE DATABASE ${name}`));
  } catch (err) {
    throw new Error(`cannot create a test database on ${new URL(TEST_PG_URL).host}: ${(err as Error).message}`, { cause: err });
  }
  let dropped = false;
  return {
    url: databaseUrl(name),
    async drop() {
      if (dropped) return;
      dropped = true;
      await withAdmin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}

/** Runs SQL against a test database, for assertions on what a store wrote. */
export async function queryDatabase(url: string, sql: string, params: unknown[] = []): Promise<Record<string, unknown>[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  client.on('error', () => {});
  await client.connect();
  try {
    return (await client.query(sql, params)).rows;
  } finally {
    await client.end().catch(() => {});
  }
}
