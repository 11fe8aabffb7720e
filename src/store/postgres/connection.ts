import pg from 'pg';
import { Semaphore } from '../../util/semaphore.ts';
import { withTimeout } from '../../util/with-timeout.ts';
import { StoreUnavailableError } from '../store.ts';

/**
 * The connection side of the PostgreSQL store: a bounded `pg` pool, deadlines, retries and
 * the classification of errors. Every operation has a deadline (the store timeout) that
 * covers waiting for a connection, connecting and each statement; past it, or when the
 * server cannot be reached, the operation fails with StoreUnavailableError (503) and the
 * broken connection is dropped, so the pool refills by itself once the database is back.
 * Nothing session-scoped is used on the request path (no SET, no advisory locks) except
 * the named prepared statements of the hot queries (`prepared()`): parsed and planned once
 * per connection instead of on every request. A transaction pooler in front must therefore
 * keep protocol-level prepared statements (PgBouncer 1.21+ with `max_prepared_statements`).
 */

export type Row = Record<string, unknown>;
/** A hot statement, prepared once per connection under its name (node-postgres `name:`). */
export interface Prepared {
  readonly name: string;
  readonly text: string;
}
export type Query = (sql: string | Prepared, ...params: unknown[]) => Promise<pg.QueryResult<Row>>;

/**
 * Names a statement for preparing. Its result columns must be spelled out (no `*`): a
 * statement prepared before a migration that adds a column would otherwise fail with
 * "cached plan must not change result type".
 */
export const prepared = (name: string, text: string): Prepared => ({ name: `smcd_${name}`, text });
/** `pg` honours a per-query `query_timeout` (client/query.js); @types/pg does not declare it. */
type TimedQuery = pg.QueryConfig & { query_timeout: number };

/**
 * How an operation talks to the database:
 * - read: autocommit reads; safe to run again on a fresh connection.
 * - write: one autocommit write; never re-sent after a connection broke (it may have committed).
 * - tx: BEGIN ... COMMIT, run again as a whole on serialization failure or deadlock.
 */
export type OpKind = 'read' | 'write' | 'tx';

export interface PgConnectionOptions {
  /** Connections this node may hold. */
  poolSize?: number;
  /** Milliseconds an operation may take, connecting included, before it fails as unavailable. */
  timeoutMs?: number;
}

export const DEFAULT_POOL_SIZE = 10;
const DEFAULT_TIMEOUT_MS = 5_000;
/** Attempts of one transaction that keeps losing to serialization failures or deadlocks. */
export const MAX_ATTEMPTS = 6;

/** SQLSTATEs after which the whole transaction may simply run again. */
export const RETRYABLE = new Set(['40001', '40P01']);
/** SQLSTATEs and socket errors meaning the database cannot be reached or cannot serve now. */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, recovering)
  '57014', // query_canceled: our statement_timeout
  '53300', // too_many_connections
]);
const CONNECTION_MESSAGES =
  /Connection terminated|Query read timeout|not queryable|timeout exceeded when trying to connect|connection timeout|Client was closed/i;

class DeadlineExceeded extends Error {
  constructor() {
    super('the database did not answer in time');
    this.name = 'DeadlineExceeded';
  }
}

/** Thrown inside a transaction to roll it back and run it again, like a serialization failure. */
export class RetryTransaction extends Error {
  readonly code = '40001';
  constructor() {
    super('a concurrent change decided first; running the transaction again');
  }
}

/** A connection taken from the pool turned out dead before it did any work. */
class StaleConnection extends Error {
  constructor(cause: unknown) {
    super('stale pooled connection', { cause });
  }
}

export function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}

/** The connection itself failed: it must not go back to the pool. */
function isConnectionLevel(err: unknown): boolean {
  if (err instanceof DeadlineExceeded) return true;
  const code = errorCode(err);
  if (code.startsWith('08') || (UNAVAILABLE_CODES.has(code) && code !== '53300')) return true;
  return CONNECTION_MESSAGES.test((err as Error | null)?.message ?? '');
}

/** The API answers these with 503 ServiceUnavailable. */
export function isUnavailableError(err: unknown): boolean {
  if (err instanceof StaleConnection) return true;
  return isConnectionLevel(err) || UNAVAILABLE_CODES.has(errorCode(err));
}

/** The URL without password or query parameters (which may carry one), for logs. */
export function describePostgresUrl(url: string): string {
  try {
    const u = new URL(url);
    return `postgres://${u.username ? `${u.username}@` : ''}${u.host}${u.pathname}`;
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

function beforeDeadline<T>(promise: Promise<T>, deadline: number): Promise<T> {
  return withTimeout(promise, deadline - Date.now(), () => new DeadlineExceeded());
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Full jitter over an exponential ceiling, so that racing nodes do not collide again in step. */
export const backoffMs = (attempt: number) => Math.random() * Math.min(200, 5 * 2 ** attempt);

export const noop = () => {};

export class PgConnection {
  readonly timeoutMs: number;
  readonly poolSize: number;
  readonly #pool: pg.Pool;
  /** Permits for work whose cost grows with the data: half the pool, so the other half stays free. */
  readonly #heavy: Semaphore;
  #closed = false;

  constructor(url: string, opts: PgConnectionOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.poolSize = opts.poolSize ?? DEFAULT_POOL_SIZE;
    this.#pool = new pg.Pool({
      connectionString: url,
      max: this.poolSize,
      connectionTimeoutMillis: this.timeoutMs,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      application_name: 'smcd',
      // Server side limits as start-up parameters, not SET: they hold for every statement
      // without a session-scoped command on the request path.
      statement_timeout: this.timeoutMs,
      idle_in_transaction_session_timeout: Math.max(2 * this.timeoutMs, 10_000),
    });
    // An idle connection the server dropped is removed by the pool, which then emits
    // 'error'; a checked-out one emits on the client. Both surface again as failed
    // queries, so the events themselves only need a listener.
    this.#pool.on('error', noop);
    this.#pool.on('connect', (client) => client.on('error', noop));
    this.#heavy = new Semaphore(Math.max(1, Math.floor(this.poolSize / 2)));
  }

  async #acquire(deadline: number): Promise<pg.PoolClient> {
    const pending = this.#pool.connect();
    try {
      return await beforeDeadline(pending, deadline);
    } catch (err) {
      // A connection that arrives after we gave up goes straight back.
      pending.then((c) => c.release(), noop);
      throw err;
    }
  }

  async #attempt<T>(kind: OpKind, fn: (q: Query) => Promise<T>, deadline: number): Promise<T> {
    const client = await this.#acquire(deadline);
    let broken: Error | undefined;
    let sent = 0;
    const q: Query = async (sql, ...params) => {
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new DeadlineExceeded();
      sent++;
      try {
        const config: TimedQuery =
          typeof sql === 'string'
            ? { text: sql, values: params, query_timeout: remaining }
            : { name: sql.name, text: sql.text, values: params, query_timeout: remaining };
        return await client.query<Row>(config);
      } catch (err) {
        if (isConnectionLevel(err)) {
          broken = err as Error;
          // Nothing reached the database yet (or it was a read): safe to try once more.
          if (sent === 1 && kind !== 'write') throw new StaleConnection(err);
        }
        throw err;
      }
    };
    try {
      if (kind === 'tx') await q('BEGIN');
      const result = await fn(q);
      if (kind === 'tx') await q('COMMIT');
      return result;
    } catch (err) {
      if (kind === 'tx' && !broken) {
        const rollback: TimedQuery = { text: 'ROLLBACK', query_timeout: 1_000 };
        await client.query(rollback).catch((e: Error) => {
          broken = e;
        });
      }
      throw err;
    } finally {
      // Releasing with an error closes the connection instead of pooling it.
      client.release(broken);
    }
  }

  async #retrying<T>(kind: OpKind, fn: (q: Query) => Promise<T>, deadline: number): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#attempt(kind, fn, deadline);
      } catch (err) {
        const again = (RETRYABLE.has(errorCode(err)) && attempt < MAX_ATTEMPTS) || (err instanceof StaleConnection && attempt === 1);
        const wait = err instanceof StaleConnection ? 0 : backoffMs(attempt);
        if (!again || Date.now() + wait >= deadline) throw err instanceof StaleConnection ? err.cause : err;
        await sleep(wait);
      }
    }
  }

  /**
   * Runs one operation within the store timeout (waiting for a connection included);
   * an unreachable or too slow database becomes StoreUnavailableError (503).
   */
  async op<T>(kind: OpKind, fn: (q: Query) => Promise<T>, timeoutMs = this.timeoutMs): Promise<T> {
    if (this.#closed) throw new Error('the store is closed');
    const deadline = Date.now() + timeoutMs;
    const work = this.#retrying(kind, fn, deadline);
    work.catch(noop); // the deadline may answer first; the attempt then winds down by itself
    try {
      return await beforeDeadline(work, deadline);
    } catch (err) {
      if (isUnavailableError(err)) throw new StoreUnavailableError(err);
      throw err;
    }
  }

  /**
   * As op, for work whose cost grows with the data (filtered counts, deep pages): however
   * many run at once they share half the pool; each waits at most the store timeout.
   */
  heavy<T>(kind: OpKind, fn: (q: Query) => Promise<T>): Promise<T> {
    return this.#heavy.run(
      Date.now() + this.timeoutMs,
      () => new StoreUnavailableError(new DeadlineExceeded()),
      () => this.op(kind, fn),
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }
}
