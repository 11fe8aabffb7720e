import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer, tempDir, testClock } from './helpers/server.ts';
import { callV1 } from './helpers/sign.ts';
import { openTestDatabase, STORE_KINDS, storeSkipReason } from './helpers/stores.ts';

const DAY = 86_400_000;

/** What the test knows of each code, to compute its Status independently of the server. */
interface Known {
  id: string;
  name: string;
  createdAt: number;
  ttlDays: number;
  count: number;
  used: number;
  disabled: boolean;
}

const expected = (k: Known, now: number) =>
  now >= k.createdAt + k.ttlDays * DAY ? 'expired' : k.disabled || k.used >= k.count ? 'unactivated' : 'activated';

for (const kind of STORE_KINDS) {
  describe(`Status filters stay correct as the clock moves across expiry (${kind})`, { skip: await storeSkipReason(kind) }, () => {
    let s: TestServer;
    let db: { url: string; drop(): Promise<void> };
    let dir: string;
    const clock = testClock(Date.UTC(2031, 0, 1));
    const ts = () => `${new Date(clock()).toISOString().slice(0, 19)}Z`;
    const known: Known[] = [];

    before(async () => {
      dir = tempDir();
      db = await openTestDatabase(kind, dir);
      s = await startTestServer({ dir, database: db.url, clock, authFailureLimit: 1_000_000 });
      // 36 codes: lifetimes of 1 to 4 days, every third used up, every fifth disabled, two names.
      for (let i = 0; i < 36; i++) {
        const k: Known = {
          id: '',
          name: i % 2 ? 'odd' : 'even',
          createdAt: clock(),
          ttlDays: 1 + (i % 4),
          count: i % 3 === 0 ? 1 : 5,
          used: 0,
          disabled: false,
        };
        const r = await callV1(
          s.url,
          s.root,
          'CreateAccessToken',
          { Name: k.name, TimeToLiveInDays: String(k.ttlDays), Count: String(k.count) },
          { timestamp: ts() },
        );
        assert.equal(r.status, 200, r.text);
        k.id = r.body.AccessTokenId;
        if (i % 3 === 0) {
          const imported = await callV1(
            s.url,
            { id: k.id, secret: r.body.AccessTokenCode },
            'ImportSourceServer',
            { MachineId: `clock-${kind}-${i}` },
            { timestamp: ts() },
          );
          assert.equal(imported.status, 200, imported.text);
          k.used = 1;
        }
        if (i % 5 === 0) {
          assert.equal((await callV1(s.url, s.root, 'DisableAccessToken', { AccessTokenId: k.id }, { timestamp: ts() })).status, 200);
          k.disabled = true;
        }
        known.push(k);
        clock.advance(60 * 60_000); // an hour apart: expiries spread over the days below
      }
    });
    after(async () => {
      await s?.close();
      await db?.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    /** Every page of one filtered list, checked for order and for TotalCount. */
    async function listAll(params: Record<string, string>): Promise<string[]> {
      const ids: string[] = [];
      let total = -1;
      for (let page = 1; ; page++) {
        const r = await callV1(s.url, s.root, 'ListAccessTokens', { ...params, PageNumber: String(page), PageSize: '7' }, { timestamp: ts() });
        assert.equal(r.status, 200, r.text);
        total = r.body.TotalCount;
        const items = r.body.AccessTokens.AccessToken;
        for (const item of items) {
          if (params.Status) assert.equal(item.Status, params.Status, `${item.AccessTokenId} listed under ${params.Status}`);
          ids.push(item.AccessTokenId);
        }
        if (items.length < 7) break;
      }
      assert.equal(ids.length, total, `TotalCount of ${JSON.stringify(params)}`);
      return ids;
    }

    it('at each step across every expiry, each Status (alone and with Name) lists exactly its codes, newest first', async () => {
      const newestFirst = [...known].reverse();
      // From just after the last creation to past every lifetime, in 6-hour steps.
      for (let step = 0; step <= 20; step++) {
        const now = clock();
        for (const status of ['activated', 'unactivated', 'expired']) {
          const want = newestFirst.filter((k) => expected(k, now) === status).map((k) => k.id);
          assert.deepEqual(await listAll({ Status: status }), want, `${status} at +${step * 6} h`);
          const wantOdd = newestFirst.filter((k) => k.name === 'odd' && expected(k, now) === status).map((k) => k.id);
          assert.deepEqual(await listAll({ Status: status, Name: 'odd' }), wantOdd, `${status} and Name=odd at +${step * 6} h`);
        }
        clock.advance(6 * 60 * 60_000);
      }
      assert.equal((await listAll({ Status: 'expired' })).length, known.length, 'in the end every code has expired');
    });
  });
}
