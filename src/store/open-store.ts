import type { Store } from './store.ts';

export interface StoreOptions {
  /** PostgreSQL: connections this node may hold. */
  poolSize?: number;
  /** Milliseconds a store operation may take before it fails as unavailable (503). */
  timeoutMs?: number;
}

/**
 * The stores smcd knows, by the database URL they serve. Each is loaded only when asked
 * for; a new store is a folder implementing Store, one line here, and a run of the store
 * contract tests (test/store/).
 */
const STORES: Array<{ accepts: (url: string) => boolean; open: (url: string, options: StoreOptions) => Promise<Store> }> = [
  {
    accepts: (url) => /^postgres(ql)?:\/\//.test(url),
    open: async (url, options) => (await import('./postgres/postgres-store.ts')).PostgresStore.open(url, options),
  },
  {
    // `sqlite:<path>`, or a bare path.
    accepts: () => true,
    open: async (url, options) =>
      new (await import('./sqlite/sqlite-store.ts')).SqliteStore(url.startsWith('sqlite:') ? url.slice('sqlite:'.length) : url, options),
  },
];

export async function openStore(url: string, options: StoreOptions = {}): Promise<Store> {
  const store = STORES.find((s) => s.accepts(url));
  if (!store) throw new Error(`no store serves ${describeDatabaseUrl(url)}`);
  return store.open(url, options);
}

/** The URL with any password masked, for logs. */
export function describeDatabaseUrl(url: string): string {
  return url.replace(/(\/\/[^:/@]+:)[^@]*@/, '$1***@');
}
