import cluster from 'node:cluster';
import pino from 'pino';
import { ensureRootKey, looseSecretFiles, openData, StartupError } from '../bootstrap.ts';
import { systemClock } from '../domain/time.ts';
import { checkPublicUrl, SmcdServer } from '../server.ts';
import { describeDatabaseUrl } from '../store/open-store.ts';
import { StoreUnavailableError } from '../store/store.ts';
import { readTlsPair, TlsFileError } from '../tls-files.ts';
import { runPrimary, workerMetrics } from './cluster.ts';
import { type Command, EXIT, intOption, UsageError } from './command.ts';
import { summaryOf } from './commands.ts';
import { databaseUrl, dataOptions } from './data-options.ts';

export const serveCommand: Command = {
  name: 'serve',
  summary: summaryOf('serve'),
  usage: 'smcd serve [options]',
  example: 'smcd serve --host 0.0.0.0 --port 8080 --database postgres://smcd@db:5432/smcd',
  options: {
    host: { type: 'string', description: 'Address to listen on.', env: 'SMCD_HOST', default: '127.0.0.1' },
    port: { type: 'string', description: 'Port to listen on (0 picks a free one).', env: 'SMCD_PORT', default: '8080' },
    ...dataOptions,
    'heartbeat-rate': {
      type: 'string',
      description: 'Seconds between source heartbeats; 3 missed mean Unavailable.',
      env: 'SMCD_HEARTBEAT_RATE',
      default: '30',
    },
    'trust-proxy': {
      type: 'string',
      description: 'Comma-separated proxy addresses/CIDRs whose X-Forwarded-For is believed.',
      env: 'SMCD_TRUST_PROXY',
      default: '',
    },
    'auth-failure-limit': {
      type: 'string',
      description: 'Failed authentications per address per window before 429.',
      env: 'SMCD_AUTH_FAILURE_LIMIT',
      default: '100',
    },
    'auth-failure-window': { type: 'string', description: 'Throttling window in seconds.', env: 'SMCD_AUTH_FAILURE_WINDOW', default: '60' },
    'key-failure-limit': {
      type: 'string',
      description: 'Wrong signatures per AccessKeyId per window before 429 for that key id (its known addresses excepted).',
      env: 'SMCD_KEY_FAILURE_LIMIT',
      default: '1000',
    },
    'max-connections-per-address': {
      type: 'string',
      description: 'Open connections one client address (IPv6: one /64) may hold.',
      env: 'SMCD_MAX_CONNECTIONS_PER_ADDRESS',
      default: '256',
    },
    'public-url': {
      type: 'string',
      description: 'URL sources reach this server at, for the agent script and import command (default: the listen address).',
      env: 'SMCD_PUBLIC_URL',
    },
    'tls-cert': {
      type: 'string',
      description: 'PEM certificate (chain) file: serve HTTPS instead of HTTP. Needs --tls-key; re-read on SIGHUP.',
      env: 'SMCD_TLS_CERT',
    },
    'tls-key': { type: 'string', description: 'PEM private key file of --tls-cert; re-read on SIGHUP.', env: 'SMCD_TLS_KEY' },
    'audit-retention-days': {
      type: 'string',
      description: 'Days audit events (and webhook deliveries) are kept before they are purged.',
      env: 'SMCD_AUDIT_RETENTION_DAYS',
      default: '365',
    },
    'db-pool-size': { type: 'string', description: 'PostgreSQL connections per node.', env: 'SMCD_DB_POOL_SIZE', default: '10' },
    'db-timeout': {
      type: 'string',
      description: 'Milliseconds before a PostgreSQL operation gives up with 503.',
      env: 'SMCD_DB_TIMEOUT_MS',
      default: '5000',
    },
    workers: {
      type: 'string',
      description: 'Processes serving the port (node:cluster), for PostgreSQL; limits and pools are per worker.',
      env: 'SMCD_WORKERS',
      default: '1',
    },
    'log-level': { type: 'string', description: 'fatal, error, warn, info, debug or silent.', env: 'SMCD_LOG_LEVEL', default: 'info' },
  },
  async run(values) {
    const settings = settingsFrom(values);
    const level = String(values['log-level']);
    if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(level)) throw new UsageError('--log-level: unknown level');
    // Log lines are written asynchronously and gathered: one write per 4 KiB or per 250 ms,
    // whichever comes first, not one per request (a write per line cost a fleet's heartbeats a
    // quarter of their CPU). What is still queued is flushed when smcd stops; a kill -9 loses at
    // most the last 250 ms of log lines, never data.
    const destination = pino.destination({ dest: 1, sync: false, minLength: 4096 });
    const flusher = setInterval(() => destination.flush(), 250).unref();
    // A worker's lines say which worker and process wrote them.
    const base = cluster.isWorker ? { service: 'smcd', worker: cluster.worker?.id, pid: process.pid } : { service: 'smcd' };
    const log = pino({ level, base }, destination);
    try {
      if (settings.workers > 1 && cluster.isPrimary) return await primary(values, log, settings);
      return await serve(values, log, settings);
    } finally {
      clearInterval(flusher);
      destination.flushSync();
      // A worker's channel to the primary would keep it running once it has stopped serving.
      if (cluster.isWorker) process.disconnect();
    }
  },
};

interface ServeSettings {
  port: number;
  heartbeatRateSeconds: number;
  authFailureLimit: number;
  authFailureWindowMs: number;
  keyFailureLimit: number;
  maxConnectionsPerAddress: number;
  publicUrl: string | undefined;
  tlsCert: string;
  tlsKey: string;
  poolSize: number;
  timeoutMs: number;
  workers: number;
  auditRetentionDays: number;
  /** Tests only: the first webhook retry's delay, SMCD_WEBHOOK_BACKOFF_MS (default 10 s). */
  webhookBackoffMs: number | undefined;
}

/** The flags, checked: a usage error names the flag, before anything is opened. */
function settingsFrom(values: Record<string, unknown>): ServeSettings {
  let publicUrl: string | undefined;
  if (typeof values['public-url'] === 'string' && values['public-url'] !== '') {
    const checked = checkPublicUrl(values['public-url']);
    if ('error' in checked) throw new UsageError(`--public-url ${checked.error}`);
    publicUrl = checked.url;
  }
  const tlsCert = typeof values['tls-cert'] === 'string' ? values['tls-cert'] : '';
  const tlsKey = typeof values['tls-key'] === 'string' ? values['tls-key'] : '';
  if (Boolean(tlsCert) !== Boolean(tlsKey)) throw new UsageError('--tls-cert and --tls-key go together: give both, or neither');
  const workers = intOption(values, 'workers', 1, 256);
  // Measured (bench/README.md): several processes on one SQLite file take turns on its write
  // lock, each blocking its event loop while it waits: no more throughput, a far worse p99.
  if (workers > 1 && !/^postgres(ql)?:\/\//.test(databaseUrl(values)))
    throw new UsageError(
      '--workers above 1 needs PostgreSQL (--database postgres://...): SQLite has one writer at a time, so more processes would only wait on each other',
    );
  return {
    port: intOption(values, 'port', 0, 65535),
    heartbeatRateSeconds: intOption(values, 'heartbeat-rate', 1, 86_400),
    authFailureLimit: intOption(values, 'auth-failure-limit', 1, 1_000_000),
    authFailureWindowMs: intOption(values, 'auth-failure-window', 1, 86_400) * 1000,
    keyFailureLimit: intOption(values, 'key-failure-limit', 1, 1_000_000),
    maxConnectionsPerAddress: intOption(values, 'max-connections-per-address', 1, 100_000),
    publicUrl,
    tlsCert,
    tlsKey,
    poolSize: intOption(values, 'db-pool-size', 1, 1000),
    timeoutMs: intOption(values, 'db-timeout', 100, 600_000),
    workers,
    auditRetentionDays: intOption(values, 'audit-retention-days', 1, 36_500),
    webhookBackoffMs: webhookBackoffFromEnv(process.env.SMCD_WEBHOOK_BACKOFF_MS),
  };
}

/** SMCD_WEBHOOK_BACKOFF_MS shrinks webhook retries so that tests run in seconds; not for production. */
function webhookBackoffFromEnv(raw: string | undefined): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d{1,9}$/.test(raw) || Number(raw) < 1) throw new UsageError('SMCD_WEBHOOK_BACKOFF_MS must be a whole number of milliseconds');
  return Number(raw);
}

/** Opens the data, serves until SIGTERM/SIGINT, and closes; every outcome is logged. */
async function serve(values: Record<string, unknown>, log: pino.Logger, settings: ServeSettings): Promise<number> {
  const {
    port,
    heartbeatRateSeconds,
    authFailureLimit,
    authFailureWindowMs,
    keyFailureLimit,
    maxConnectionsPerAddress,
    publicUrl,
    tlsCert,
    tlsKey,
    poolSize,
    timeoutMs,
    auditRetentionDays,
    webhookBackoffMs,
  } = settings;
  const dataDir = String(values['data-dir']);
  const url = databaseUrl(values);
  // Signals are caught from the very start: before a listener exists, SIGTERM's default
  // action would end the process at once, even right after the start line was printed.
  let requested: string | undefined;
  let onSignal = (signal: string) => {
    requested ??= signal;
  };
  const relay = (signal: NodeJS.Signals) => onSignal(signal);
  process.on('SIGTERM', relay);
  process.on('SIGINT', relay);
  // SIGHUP re-reads the certificate and key (renewed in place); a bad pair keeps the old one.
  let reloadTls = () => {};
  const hangup = () => reloadTls();
  // Always caught: `systemctl reload` sends HUP, which must never end a server without TLS.
  process.on('SIGHUP', hangup);
  const stopListening = () => {
    process.off('SIGTERM', relay);
    process.off('SIGINT', relay);
    process.off('SIGHUP', hangup);
  };
  let server: SmcdServer;
  try {
    // Before the store is opened: a bad certificate leaves nothing to close.
    const tls = tlsCert ? readTlsPair(tlsCert, tlsKey) : undefined;
    const data = await openData(dataDir, url, process.env, { poolSize, timeoutMs });
    const credentials = await ensureRootKey(data, dataDir, systemClock());
    // A --workers worker: the primary did the first start and said all this already.
    const worker = cluster.isWorker;
    for (const file of worker ? [] : looseSecretFiles(dataDir)) {
      log.warn({ file }, `${file} may be read by other users of this machine: chmod 600 it (smcd writes its secret files 0600)`);
    }
    server = new SmcdServer({
      store: data.store,
      box: data.box,
      log,
      clock: systemClock,
      settings: { heartbeatRateSeconds },
      authFailureLimit,
      authFailureWindowMs,
      keyFailureLimit,
      maxConnectionsPerAddress,
      publicUrl,
      trustProxy: String(values['trust-proxy']),
      tls,
      metricsFrom: worker ? workerMetrics : undefined,
      auditRetentionDays,
      webhooks: { backoffMs: webhookBackoffMs },
    });
    reloadTls = () => {
      if (!tlsCert) {
        log.info('SIGHUP: nothing to reload (no --tls-cert)');
        return;
      }
      try {
        server.setTls(readTlsPair(tlsCert, tlsKey));
        log.info({ cert: tlsCert, key: tlsKey }, `TLS certificate reloaded from ${tlsCert}`);
      } catch (err) {
        log.warn(
          { err: { message: (err as Error).message } },
          `TLS reload refused, still serving the previous certificate: ${(err as Error).message}`,
        );
      }
    };
    const address = await server.listen(port, String(values.host));
    if (worker) log.info({ address }, `worker ${cluster.worker?.id} serving ${address}`);
    else
      log.info(
        { address, store: describeDatabaseUrl(data.store.description), rootCredentials: credentials, masterKey: data.masterKeyOrigin },
        `smcd listening on ${address}; store ${describeDatabaseUrl(data.store.description)}; root credentials: ${credentials}; console: ${address}/console/`,
      );
  } catch (err) {
    stopListening();
    return startFailure(err, url, log);
  }
  await new Promise<void>((resolve) => {
    let stopping = false;
    onSignal = (signal) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'shutting down: finishing in-flight requests');
      server.close().then(resolve, (err) => {
        log.error({ err }, 'error while shutting down');
        resolve();
      });
    };
    if (requested) onSignal(requested);
  });
  stopListening();
  log.info('stopped');
  return EXIT.ok;
}

/** Why smcd could not start, as one line for the operator; the exit code. */
function startFailure(err: unknown, url: string, log: pino.Logger): number {
  if (err instanceof StoreUnavailableError) {
    const cause = (err.cause as Error | undefined)?.message ?? 'no answer';
    log.fatal({ store: describeDatabaseUrl(url) }, `smcd cannot start: the store ${describeDatabaseUrl(url)} is unreachable (${cause})`);
    return EXIT.failed;
  }
  if (err instanceof StartupError || err instanceof TlsFileError || (err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
    log.fatal({ err: { message: (err as Error).message } }, `smcd cannot start: ${(err as Error).message}`);
    return EXIT.failed;
  }
  // Anything else is unexpected: one line for the operator, the stack for whoever debugs it.
  log.debug({ err }, 'start-up failure');
  log.fatal(
    { err: { message: (err as Error)?.message } },
    `smcd cannot start: ${(err as Error)?.message ?? String(err)} (run with --log-level debug for details)`,
  );
  return EXIT.failed;
}

/**
 * --workers N: the first-start work (migrations, master key check, root credentials) is
 * done here once, then N workers serve (src/cli/cluster.ts) until SIGTERM/SIGINT.
 */
async function primary(values: Record<string, unknown>, log: pino.Logger, settings: ServeSettings): Promise<number> {
  const { tlsCert, tlsKey, poolSize, timeoutMs, workers } = settings;
  const dataDir = String(values['data-dir']);
  const url = databaseUrl(values);
  let requested: string | undefined;
  let onSignal = (signal: NodeJS.Signals) => {
    if (signal !== 'SIGHUP') requested ??= signal;
  };
  const relay = (signal: NodeJS.Signals) => onSignal(signal);
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, relay);
  const stopListening = () => {
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.off(signal, relay);
  };
  let credentials: string;
  let store: string;
  try {
    if (tlsCert) readTlsPair(tlsCert, tlsKey);
    const data = await openData(dataDir, url, process.env, { poolSize: 1, timeoutMs });
    store = describeDatabaseUrl(data.store.description);
    try {
      credentials = await ensureRootKey(data, dataDir, systemClock());
    } finally {
      await data.store.close();
    }
    for (const file of looseSecretFiles(dataDir)) {
      log.warn({ file }, `${file} may be read by other users of this machine: chmod 600 it (smcd writes its secret files 0600)`);
    }
  } catch (err) {
    stopListening();
    return startFailure(err, url, log);
  }
  const code = await runPrimary({
    workers,
    log,
    tls: Boolean(tlsCert),
    requested,
    onSignal: (handler) => {
      onSignal = handler;
    },
    started: (address) =>
      log.info(
        { address, store, rootCredentials: credentials, workers, poolSize },
        `smcd listening on ${address}; store ${store}; root credentials: ${credentials}; console: ${address}/console/; ${workers} workers`,
      ),
  });
  stopListening();
  log.info('stopped');
  return code;
}
