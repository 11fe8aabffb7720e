import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** What `smcd_build_info` reports: which smcd, on which Node.js, over which store. */
export interface BuildInfo {
  version: string;
  node: string;
  store: 'sqlite' | 'postgres';
}

/** The store kind from a store's description (`sqlite:<path>` or `postgres://...`). */
export function storeKind(description: string): BuildInfo['store'] {
  return description.startsWith('postgres') ? 'postgres' : 'sqlite';
}

/** What the state gauges count, asked of the store when scraped (at most every STATE_TTL_MS). */
export interface StateCounts {
  codes: Record<'activated' | 'unactivated' | 'expired', number>;
  sources: Record<'Available' | 'Unavailable', number>;
}

/** A scrape reuses counts this young: they are filtered counts, cheap but not free on a big fleet. */
const STATE_TTL_MS = 15_000;

/**
 * One registry per server, so several servers can live in one test process. Node's and the
 * process's default metrics keep their standard names (process_*, nodejs_*), so stock
 * dashboards work; smcd's own are smcd_*.
 */
export function createMetrics(build: BuildInfo, countState?: () => Promise<StateCounts>) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // The Prometheus info-metric convention: a constant 1 whose labels carry the facts.
  new Gauge({
    name: 'smcd_build_info',
    help: 'Always 1; labels: smcd version, Node.js version and store kind.',
    labelNames: ['version', 'node', 'store'] as const,
    registers: [registry],
    // Summed over --workers by prom-client's AggregatorRegistry: these are per node, not per worker.
    aggregator: 'first',
  }).set({ version: build.version, node: build.node, store: build.store }, 1);
  let cached: { at: number; counts: Promise<StateCounts> } | undefined;
  const counts = (): Promise<StateCounts> | undefined => {
    if (!countState) return undefined;
    if (!cached || Date.now() - cached.at > STATE_TTL_MS) {
      const pending = countState();
      cached = { at: Date.now(), counts: pending };
      pending.catch(() => {
        if (cached?.counts === pending) cached = undefined; // a failed count is asked again next scrape
      });
    }
    return cached.counts;
  };
  new Gauge({
    name: 'smcd_access_tokens',
    help: 'Activation codes by status (activated, unactivated, expired), counted at most every 15 s.',
    labelNames: ['status'] as const,
    registers: [registry],
    aggregator: 'max',
    async collect() {
      const c = await counts()?.catch(() => undefined);
      if (c) for (const [status, n] of Object.entries(c.codes)) this.set({ status }, n);
    },
  });
  new Gauge({
    name: 'smcd_source_servers',
    help: 'Source servers by state (Available, Unavailable), counted at most every 15 s.',
    labelNames: ['state'] as const,
    registers: [registry],
    aggregator: 'max',
    async collect() {
      const c = await counts()?.catch(() => undefined);
      if (c) for (const [state, n] of Object.entries(c.sources)) this.set({ state }, n);
    },
  });
  return {
    registry,
    requests: new Counter({
      name: 'smcd_requests_total',
      help: 'API requests by Action and response Code (OK for success).',
      labelNames: ['action', 'code'] as const,
      registers: [registry],
    }),
    latency: new Histogram({
      name: 'smcd_request_duration_seconds',
      help: 'API request latency by Action.',
      labelNames: ['action'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    tokensCreated: new Counter({ name: 'smcd_access_tokens_created_total', help: 'Activation codes created.', registers: [registry] }),
    imports: new Counter({
      name: 'smcd_imports_total',
      help: 'Successful imports; slot=used for a new machine, reimport otherwise.',
      labelNames: ['slot'] as const,
      registers: [registry],
    }),
    importRefusals: new Counter({
      name: 'smcd_import_refusals_total',
      help: 'Imports refused, by reason.',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    storeErrors: new Counter({ name: 'smcd_store_errors_total', help: 'Store operations that failed.', registers: [registry] }),
    internalErrors: new Counter({
      name: 'smcd_internal_errors_total',
      help: 'Requests answered 500 because a handler failed unexpectedly (each is logged with its RequestId).',
      registers: [registry],
    }),
    connectionsRefused: new Counter({
      name: 'smcd_connections_refused_total',
      help: 'Connections closed at once because their client address held too many (--max-connections-per-address).',
      registers: [registry],
    }),
    batchSize: new Histogram({
      name: 'smcd_group_commit_batch_size',
      help: 'Writes committed together in one transaction (SQLite group commit).',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
