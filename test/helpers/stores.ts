import { join } from 'node:path';
import { createTestDatabase, postgresSkipReason } from './postgres.ts';

export type StoreKind = 'sqlite' | 'postgres';

/**
 * Every store the suites run against. A wire test loops over them:
 *
 *   for (const kind of STORE_KINDS)
 *     describe(`... (${kind})`, { skip: await storeSkipReason(kind) }, () => {
 *       before(async () => { db = await openTestDatabase(kind, dir); s = await startTestServer({ dir, database: db.url }); });
 *       after(async () => { await s.close(); await db.drop(); });
 *     });
 */
export const STORE_KINDS: StoreKind[] = ['sqlite', 'postgres'];

/** A fresh database of that kind: a file under `dir`, or a new PostgreSQL database. */
export async function openTestDatabase(kind: StoreKind, dir: string): Promise<{ url: string; drop(): Promise<void> }> {
  if (kind === 'sqlite') return { url: `sqlite:${join(dir, 'smcd.db')}`, drop: async () => {} };
  return createTestDatabase();
}

/** Why this kind cannot be tested here (PostgreSQL unreachable outside CI), or undefined. */
export async function storeSkipReason(kind: StoreKind): Promise<string | undefined> {
  return kind === 'postgres' ? postgresSkipReason() : undefined;
}
