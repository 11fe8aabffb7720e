import type { Store } from './store.ts';

/**
 * `sqlite:<path>` (or a bare path) opens the embedded store; `postgres://` or
 * `postgresql://` the PostgreSQL store, loaded only when asked for.
 */
export async function openStore(url: string, options: { poolSize?: number; timeoutMs?: number } = {}): Promise<Store> {
  if (/^postgres(ql)?:\/\//.test(url)) {
    const { PostgresStore } = await import('./postgres/postgres-store.ts');
    return PostgresStore.open(url, options);
  }
  const { SqliteStore } = await import('./sqlite/sqlite-store.ts');
  return new SqliteStore(url.startsWith('sqlite:') ? url.slice('sqlite:'.length) : url, options);
}

/** The URL with any password masked, for logs. */
export function describeDatabaseUrl(url: string): string {
  return url.replace(/(\/\/[^:/@]+:)[^@]*@/, '$1***@');
}
