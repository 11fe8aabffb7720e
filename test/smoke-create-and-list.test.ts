import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { REQUEST_ID, callV1, callV3 } from './helpers/sign.ts';
import { type TestServer, startTestServer } from './helpers/server.ts';

describe('a signed client creates and lists activation codes', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer();
  });
  after(() => s.close());

  it('creates with V1 GET and lists it back without the code', async () => {
    const created = await callV1(s.url, s.root, 'CreateAccessToken', { Name: 'smoke', Count: '3' });
    assert.equal(created.status, 200, created.text);
    assert.match(created.body.RequestId, REQUEST_ID);
    assert.match(created.body.AccessTokenId, /^at-[a-z0-9]{20}$/);
    assert.match(created.body.AccessTokenCode, /^[A-Za-z0-9]{32}$/);
    const listed = await callV3(s.url, s.root, 'ListAccessTokens', { 'AccessTokenId.1': created.body.AccessTokenId });
    assert.equal(listed.status, 200, listed.text);
    assert.equal(listed.body.TotalCount, 1);
    const item = listed.body.AccessTokens.AccessToken[0];
    assert.equal(item.Name, 'smoke');
    assert.equal(item.Count, '3');
    assert.ok(!listed.text.includes(created.body.AccessTokenCode));
  });
});
