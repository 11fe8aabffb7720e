import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

/**
 * A read-only connection to the database, in its own thread: the list queries whose cost
 * grows with the data (filtered counts, deep pages) run here, so they never hold up the
 * event loop that answers everyone else. Each job's statements run in one read
 * transaction, so a count and its page see the same snapshot.
 */
export interface ReadJob {
  id: number;
  statements: Array<{ sql: string; params: unknown[] }>;
}

export type ReadResult = { id: number; rows: unknown[][] } | { id: number; error: { message: string; code?: string } };

const db = new Database(String(workerData.path), { readonly: true, fileMustExist: true });
db.pragma('busy_timeout = 5000');
const prepared = new Map<string, Database.Statement>();
const statement = (sql: string) => {
  let s = prepared.get(sql);
  if (!s) {
    if (prepared.size >= 200) prepared.clear();
    s = db.prepare(sql);
    prepared.set(sql, s);
  }
  return s;
};
const inSnapshot = db.transaction((job: ReadJob) => job.statements.map(({ sql, params }) => statement(sql).all(...params)));

const port = parentPort;
if (!port) throw new Error('read-worker.ts runs as a worker thread');

port.on('message', (job: ReadJob | 'close') => {
  if (job === 'close') {
    // Closed here, not by terminating the thread: a connection left open would keep the
    // main connection's close from checkpointing the WAL into the database file.
    db.close();
    port.close();
    return;
  }
  let result: ReadResult;
  try {
    result = { id: job.id, rows: inSnapshot(job) };
  } catch (err) {
    result = { id: job.id, error: { message: (err as Error).message, code: (err as { code?: string }).code } };
  }
  port.postMessage(result);
});
