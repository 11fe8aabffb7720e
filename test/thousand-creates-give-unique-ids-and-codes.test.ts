import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { callV1 } from './helpers/sign.ts';

describe('1,000 creates give 1,000 distinct ids and codes', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer();
  });
  after(() => s.close());

  it('no id or code repeats, and every one has the contract format', async () => {
    const ids = new Set<string>();
    const codes = new Set<string>();
    for (let batch = 0; batch < 20; batch++) {
      const results = await Promise.all(
        Array.from({ length: 50 }, () => callV1(s.url, s.root, 'CreateAccessToken', { Count: '1' }, { method: 'POST' })),
      );
      for (const r of results) {
        assert.equal(r.status, 200, r.text);
        assert.match(r.body.AccessTokenId, /^at-[a-z0-9]{20}$/);
        assert.match(r.body.AccessTokenCode, /^[A-Za-z0-9]{32}$/);
        ids.add(r.body.AccessTokenId);
        codes.add(r.body.AccessTokenCode);
      }
    }
    assert.equal(ids.size, 1000);
    assert.equal(codes.size, 1000);
    assert.equal((await callV1(s.url, s.root, 'ListAccessTokens', {})).body.TotalCount, 1000);
  });
});
