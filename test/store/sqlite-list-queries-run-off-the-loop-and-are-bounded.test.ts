import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SqliteReadPool } from '../../src/store/sqlite/read-pool.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { StoreUnavailableError } from '../../src/store/store.ts';
import { tempDir } from '../helpers/server.ts';

/** A query that runs for about a second or two: counting to ten million. */
const SLOW = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000000) SELECT COUNT(*) AS n FROM c';

describe('SQLite list queries run in a read worker, and the work one request may do is bounded', () => {
  let dir: string;
  let store: SqliteStore;
  before(async () => {
    dir = tempDir('smcd-reads-');
    store = new SqliteStore(join(dir, 'smcd.db')); // applies the schema
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a query still running at its deadline is answered 503 then, while the loop runs on; the next one is answered', async () => {
    const pool = new SqliteReadPool(join(dir, 'smcd.db'), { timeoutMs: 300, maxQueued: 10 });
    try {
      const ticks: number[] = [];
      const ticker = setInterval(() => ticks.push(Date.now()), 20);
      const started = Date.now();
      await assert.rejects(pool.run([{ sql: SLOW, params: [] }]), StoreUnavailableError);
      const took = Date.now() - started;
      clearInterval(ticker);
      assert.ok(took >= 290 && took < 1_000, `answered at its deadline, after ${took} ms`);
      assert.ok(ticks.length >= 5, 'the event loop kept running while the query did');
      // The thread finishes the abandoned query, then serves the next ones.
      let rows: unknown;
      for (let i = 0; i < 100 && rows === undefined; i++) {
        rows = await pool.run([{ sql: 'SELECT COUNT(*) AS n FROM access_tokens', params: [] }]).then(
          ([r]) => r,
          () => undefined,
        );
      }
      assert.deepEqual(rows, [{ n: 0 }]);
    } finally {
      await pool.close();
    }
  });

  it('past the queue bound, a query is refused at once instead of waiting', async () => {
    const pool = new SqliteReadPool(join(dir, 'smcd.db'), { timeoutMs: 30_000, maxQueued: 2 });
    try {
      const running = pool.run([{ sql: SLOW, params: [] }]);
      const queued = [pool.run([{ sql: 'SELECT 1 AS one', params: [] }]), pool.run([{ sql: 'SELECT 2 AS one', params: [] }])];
      await assert.rejects(
        pool.run([{ sql: 'SELECT 3 AS one', params: [] }]),
        (err: Error) => err instanceof StoreUnavailableError && /too many/.test(String(err.cause)),
      );
      assert.deepEqual(await running, [[{ n: 10_000_000 }]]);
      assert.deepEqual(await Promise.all(queued), [[[{ one: 1 }]], [[{ one: 2 }]]], 'the queued ones ran after it, in order');
    } finally {
      await pool.close();
    }
  });

  it('a count and its page come from one snapshot', async () => {
    const pool = new SqliteReadPool(join(dir, 'smcd.db'), { timeoutMs: 2_000, maxQueued: 2 });
    try {
      const [a, b] = await pool.run([
        { sql: 'SELECT COUNT(*) AS n FROM access_tokens', params: [] },
        { sql: 'SELECT ? AS echo', params: ['x'] },
      ]);
      assert.deepEqual([a, b], [[{ n: 0 }], [{ echo: 'x' }]]);
    } finally {
      await pool.close();
    }
  });
});
