import type { Worker } from 'node:worker_threads';
import { startWorker } from '../../util/start-worker.ts';
import { StoreUnavailableError } from '../store.ts';
import type { ReadJob, ReadResult } from './read-worker.ts';

type Row = Record<string, unknown>;

interface Pending {
  job: ReadJob;
  deadline: number;
  resolve: (rows: Row[][]) => void;
  reject: (err: unknown) => void;
}

export interface ReadPoolOptions {
  /** How long one job may wait and run in all before it is abandoned (503). */
  timeoutMs: number;
  /** Jobs that may wait; more are refused at once (503) instead of queueing without end. */
  maxQueued: number;
}

/**
 * One read-only worker thread and a bounded queue in front of it. What one request may cost
 * is bounded: it is answered 503 when its deadline passes (waiting or running), and refused
 * at once when the queue is full. The queries sent here are counts and pages over indexed
 * predicates, bounded by the table's size; a query its caller gave up on still runs to its
 * end (terminating the thread would not stop SQLite inside a native call), and its result is
 * dropped.
 */
export class SqliteReadPool {
  readonly #path: string;
  readonly #options: ReadPoolOptions;
  readonly #queue: Pending[] = [];
  #worker?: Worker;
  #running?: Pending;
  #timer?: NodeJS.Timeout;
  #nextId = 1;
  #closed = false;

  constructor(path: string, options: ReadPoolOptions) {
    this.#path = path;
    this.#options = options;
  }

  /** Runs the statements in one snapshot; resolves with each one's rows. */
  run(statements: ReadJob['statements']): Promise<Row[][]> {
    if (this.#closed) return Promise.reject(new Error('the store is closed'));
    if (this.#queue.length >= this.#options.maxQueued) {
      return Promise.reject(new StoreUnavailableError(new Error('too many list queries are waiting')));
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ job: { id: this.#nextId++, statements }, deadline: Date.now() + this.#options.timeoutMs, resolve, reject });
      this.#next();
    });
  }

  #spawn(): Worker {
    const worker = startWorker(import.meta.url, 'read-worker', { workerData: { path: this.#path } });
    worker.on('message', (result: ReadResult) => this.#settle(result));
    worker.on('error', (err) => this.#lost(err));
    worker.on('exit', () => {
      if (this.#worker === worker) this.#worker = undefined;
    });
    worker.unref();
    return worker;
  }

  #next(): void {
    if (this.#running || this.#closed) return;
    let pending = this.#queue.shift();
    while (pending && Date.now() >= pending.deadline) {
      pending.reject(new StoreUnavailableError(new Error('the list query waited past its deadline')));
      pending = this.#queue.shift();
    }
    if (!pending) return;
    this.#running = pending;
    this.#worker ??= this.#spawn();
    // Referenced while a job runs (its caller waits on it); an idle thread keeps no process alive.
    this.#worker.ref();
    this.#worker.postMessage(pending.job);
    this.#timer = setTimeout(() => this.#overrun(), Math.max(0, pending.deadline - Date.now()));
  }

  #settle(result: ReadResult): void {
    const pending = this.#running;
    if (!pending || pending.job.id !== result.id) return;
    clearTimeout(this.#timer);
    this.#running = undefined;
    this.#worker?.unref();
    if ('error' in result) {
      const err = Object.assign(new Error(result.error.message), { code: result.error.code });
      pending.reject(result.error.code?.startsWith('SQLITE_BUSY') ? new StoreUnavailableError(err) : err);
    } else pending.resolve(result.rows as Row[][]);
    this.#next();
  }

  /** The running job passed its deadline: its caller is answered now; the thread finishes it and moves on. */
  #overrun(): void {
    const pending = this.#running;
    if (!pending) return;
    const reject = pending.reject;
    pending.resolve = () => {};
    pending.reject = () => {};
    reject(new StoreUnavailableError(new Error('the list query ran past its deadline')));
  }

  #lost(err: unknown): void {
    const pending = this.#running;
    clearTimeout(this.#timer);
    this.#running = undefined;
    this.#worker = undefined;
    pending?.reject(err);
    this.#next();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    for (const p of this.#queue.splice(0)) p.reject(new Error('the store is closed'));
    this.#running?.reject(new Error('the store is closed'));
    this.#running = undefined;
    await this.#worker?.terminate();
    this.#worker = undefined;
  }
}
