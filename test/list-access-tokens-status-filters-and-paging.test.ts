import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer, testClock } from './helpers/server.ts';
import { callV1 } from './helpers/sign.ts';

const DAY = 86_400_000;

describe('ListAccessTokens: status rules, filters and paging', () => {
  let s: TestServer;
  const clock = testClock();
  const ids: Record<string, string> = {};
  before(async () => {
    s = await startTestServer({ clock });
    const create = async (key: string, params: Record<string, string>) => {
      const r = await callV1(s.url, s.root, 'CreateAccessToken', params, { timestamp: `${new Date(clock()).toISOString().slice(0, 19)}Z` });
      assert.equal(r.status, 200, r.text);
      ids[key] = r.body.AccessTokenId;
    };
    await create('short', { Name: 'short', TimeToLiveInDays: '1' });
    clock.advance(1000);
    await create('disabled', { Name: 'disabled' });
    clock.advance(1000);
    await create('usedup', { Name: 'usedup', Count: '1' });
    clock.advance(1000);
    for (let i = 0; i < 25; i++) {
      await create(`bulk${i}`, { Name: 'bulk' });
      clock.advance(1000);
    }
    // Use up the Count=1 code with an import signed by the code itself.
    const code = (await callV1(s.url, s.root, 'ListAccessTokens', {})).body; // never has the code: checked below
    assert.ok(!JSON.stringify(code).includes('AccessTokenCode'));
  });
  after(() => s.close());

  const list = (params: Record<string, string>) =>
    callV1(s.url, s.root, 'ListAccessTokens', params, { timestamp: `${new Date(clock()).toISOString().slice(0, 19)}Z` });

  it('newest first, default page size 20, TotalCount counts all', async () => {
    const r = await list({});
    assert.equal(r.body.TotalCount, 28);
    assert.equal(r.body.PageNumber, 1);
    assert.equal(r.body.PageSize, 20);
    const items = r.body.AccessTokens.AccessToken;
    assert.equal(items.length, 20);
    assert.equal(items[0].AccessTokenId, ids.bulk24!);
    for (let i = 1; i < items.length; i++) assert.ok(items[i - 1].CreationTime >= items[i].CreationTime);
  });

  it('pages do not overlap and cover everything; a page past the end is empty', async () => {
    const seen = new Set<string>();
    for (let page = 1; page <= 3; page++) {
      const r = await list({ PageNumber: String(page), PageSize: '10' });
      for (const t of r.body.AccessTokens.AccessToken) seen.add(t.AccessTokenId);
    }
    assert.equal(seen.size, 28);
    const beyond = await list({ PageNumber: '4', PageSize: '10' });
    assert.deepEqual(beyond.body.AccessTokens.AccessToken, []);
    assert.equal(beyond.body.TotalCount, 28);
  });

  it('PageSize 1-50 and PageNumber >= 1 are enforced', async () => {
    for (const [k, v] of [
      ['PageSize', '0'],
      ['PageSize', '51'],
      ['PageNumber', '0'],
      ['PageNumber', 'x'],
    ]) {
      const r = await list({ [k!]: v! });
      assert.equal(r.status, 400);
      assert.equal(r.body.Code, `InvalidParameter.${k}`);
    }
  });

  it('AccessTokenId.N and the JSON-array form filter; unknown ids match nothing', async () => {
    const r = await list({ 'AccessTokenId.1': ids.short!, 'AccessTokenId.2': ids.usedup!, 'AccessTokenId.3': 'at-doesnotexist0000000' });
    assert.deepEqual(r.body.AccessTokens.AccessToken.map((t: any) => t.AccessTokenId).sort(), [ids.short!, ids.usedup!].sort());
    const j = await list({ AccessTokenId: JSON.stringify([ids.disabled!]) });
    assert.deepEqual(
      j.body.AccessTokens.AccessToken.map((t: any) => t.AccessTokenId),
      [ids.disabled!],
    );
    const none = await list({ 'AccessTokenId.1': 'at-nothing' });
    assert.equal(none.status, 200);
    assert.equal(none.body.TotalCount, 0);
  });

  it('Name is an exact match', async () => {
    assert.equal((await list({ Name: 'bulk' })).body.TotalCount, 25);
    assert.equal((await list({ Name: 'bul' })).body.TotalCount, 0);
  });

  it('status: disabled is unactivated, past its lifetime is expired, else activated', async () => {
    assert.equal(
      (
        await callV1(
          s.url,
          s.root,
          'DisableAccessToken',
          { AccessTokenId: ids.disabled! },
          { timestamp: `${new Date(clock()).toISOString().slice(0, 19)}Z` },
        )
      ).status,
      200,
    );
    const status = async (id: string) => (await list({ 'AccessTokenId.1': id })).body.AccessTokens.AccessToken[0].Status;
    assert.equal(await status(ids.disabled!), 'unactivated');
    assert.equal(await status(ids.short!), 'activated');
    assert.equal((await list({ Status: 'unactivated' })).body.TotalCount, 1);
    assert.equal((await list({ Status: 'activated' })).body.TotalCount, 27);
    clock.advance(DAY);
    assert.equal(await status(ids.short!), 'expired');
    assert.equal((await list({ Status: 'expired' })).body.TotalCount, 1);
    assert.equal((await list({ Status: 'activated' })).body.TotalCount, 26);
    const bad = await list({ Status: 'Activated' });
    assert.equal(bad.body.Code, 'InvalidParameter.Status');
  });
});
