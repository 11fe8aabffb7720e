import { join } from 'node:path';
import Database from 'better-sqlite3';

/**
 * The floor under every durable write on this disk: one-row SQLite transactions
 * (WAL, synchronous=FULL, as smcd opens its database) committed back to back for
 * `seconds`, one fsync each. A request that answers only once its write is on disk
 * cannot have a lower p99 than this, whatever the server does.
 */
export function probeDurableCommit(dir: string, seconds = 2): { commits: number; p50: number; p99: number } {
  const db = new Database(join(dir, 'disk-probe.db'));
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)');
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
    const commit = db.transaction(() => insert.run('at-0123456789abcdefghij'));
    const times: number[] = [];
    const end = performance.now() + seconds * 1000;
    while (performance.now() < end) {
      const t = performance.now();
      commit.immediate();
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    return {
      commits: times.length,
      p50: times[Math.floor(times.length / 2)] ?? Number.NaN,
      p99: times[Math.floor(times.length * 0.99)] ?? Number.NaN,
    };
  } finally {
    db.close();
  }
}
