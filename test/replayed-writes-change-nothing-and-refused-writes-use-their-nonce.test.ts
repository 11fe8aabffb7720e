import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer, tempDir } from './helpers/server.ts';
import { type Creds, callV1 } from './helpers/sign.ts';
import { openTestDatabase, STORE_KINDS, storeSkipReason } from './helpers/stores.ts';

/**
 * CreateAccessToken and ImportSourceServer record their nonce in their own write (one
 * commit; on PostgreSQL one statement for a create). Through the wire, on both stores: a
 * replay is refused and changes nothing, and a request refused before or by its write
 * (parameters, a used-up code) still uses its nonce, as when the nonce was recorded first.
 */
for (const kind of STORE_KINDS) {
  describe(`replayed writes change nothing; refused writes use their nonce (${kind})`, { skip: await storeSkipReason(kind) }, () => {
    const dir = tempDir();
    let db: { url: string; drop(): Promise<void> };
    let s: TestServer;
    before(async () => {
      db = await openTestDatabase(kind, dir);
      s = await startTestServer({ dir, database: db.url, authFailureLimit: 100_000 });
    });
    after(async () => {
      await s?.close();
      await db?.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    const total = async () => Number((await callV1(s.url, s.root, 'ListAccessTokens', {})).body.TotalCount);

    it('a replayed CreateAccessToken gets SignatureNonceUsed and creates no second code', async () => {
      const before = await total();
      const nonce = randomUUID();
      const first = await callV1(s.url, s.root, 'CreateAccessToken', { Name: 'replayed' }, { nonce });
      assert.equal(first.status, 200, first.text);
      const replays = await Promise.all(Array.from({ length: 5 }, () => callV1(s.url, s.root, 'CreateAccessToken', { Name: 'replayed' }, { nonce })));
      for (const r of replays) {
        assert.equal(r.status, 400, r.text);
        assert.equal(r.body.Code, 'SignatureNonceUsed');
        assert.ok(r.body.RequestId);
      }
      assert.equal(await total(), before + 1);
    });

    it('of concurrent creates with one nonce exactly one creates', async () => {
      const before = await total();
      const nonce = randomUUID();
      const results = await Promise.all(Array.from({ length: 10 }, () => callV1(s.url, s.root, 'CreateAccessToken', {}, { nonce })));
      assert.equal(results.filter((r) => r.status === 200).length, 1);
      assert.equal(results.filter((r) => r.body?.Code === 'SignatureNonceUsed').length, 9);
      assert.equal(await total(), before + 1);
    });

    it('a create refused for its parameters uses its nonce: the replay gets SignatureNonceUsed', async () => {
      const nonce = randomUUID();
      const bad = await callV1(s.url, s.root, 'CreateAccessToken', { Count: '0' }, { nonce });
      assert.equal(bad.status, 400, bad.text);
      assert.equal(bad.body.Code, 'InvalidParameter.Count');
      const replay = await callV1(s.url, s.root, 'CreateAccessToken', { Count: '0' }, { nonce });
      assert.equal(replay.status, 400);
      assert.equal(replay.body.Code, 'SignatureNonceUsed', 'the nonce is checked before the parameters');
    });

    it('a replayed import gets SignatureNonceUsed and uses no slot; a refused import uses its nonce', async () => {
      const created = await callV1(s.url, s.root, 'CreateAccessToken', { Count: '1' });
      assert.equal(created.status, 200, created.text);
      const code: Creds = { id: created.body.AccessTokenId, secret: created.body.AccessTokenCode };
      const registered = async () =>
        (await callV1(s.url, s.root, 'ListAccessTokens', { 'AccessTokenId.1': code.id })).body.AccessTokens.AccessToken[0].RegisteredCount;

      const nonce = randomUUID();
      const first = await callV1(s.url, code, 'ImportSourceServer', { MachineId: 'machine-a' }, { method: 'POST', nonce });
      assert.equal(first.status, 200, first.text);
      // The replay, also sent for another machine with the same nonce: refused as a replay.
      for (const machine of ['machine-a', 'machine-b']) {
        const replay = await callV1(s.url, code, 'ImportSourceServer', { MachineId: machine }, { method: 'POST', nonce });
        assert.equal(replay.status, 400, replay.text);
        assert.equal(replay.body.Code, 'SignatureNonceUsed');
      }
      assert.equal(await registered(), '1');
      const sources = await callV1(s.url, s.root, 'DescribeSourceServers', { AccessTokenId: code.id });
      assert.equal(sources.body.TotalCount, 1);

      const fullNonce = randomUUID();
      const full = await callV1(s.url, code, 'ImportSourceServer', { MachineId: 'machine-c' }, { method: 'POST', nonce: fullNonce });
      assert.equal(full.status, 403, full.text);
      assert.equal(full.body.Code, 'AccessToken.CountExceeded');
      const again = await callV1(s.url, code, 'ImportSourceServer', { MachineId: 'machine-c' }, { method: 'POST', nonce: fullNonce });
      assert.equal(again.body.Code, 'SignatureNonceUsed');
    });
  });
}
