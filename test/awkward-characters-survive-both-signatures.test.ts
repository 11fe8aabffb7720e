import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { callV1, callV3 } from './helpers/sign.ts';

const AWKWARD = "a b*c~d!e'f(g)h+i&j=k 中文 %20 é";

describe("spaces, * ~ ! ' ( ) + & = and CJK survive both signature versions unchanged", () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer();
  });
  after(() => s.close());

  const senders = {
    'V1 GET': (p: Record<string, string>) => callV1(s.url, s.root, 'CreateAccessToken', p),
    'V1 POST': (p: Record<string, string>) => callV1(s.url, s.root, 'CreateAccessToken', p, { method: 'POST' }),
    'V3 query': (p: Record<string, string>) => callV3(s.url, s.root, 'CreateAccessToken', p),
    'V3 form body': (p: Record<string, string>) => callV3(s.url, s.root, 'CreateAccessToken', p, { body: true }),
  };

  for (const [label, send] of Object.entries(senders)) {
    it(`${label}: the Description comes back byte for byte`, async () => {
      const created = await send({ Description: AWKWARD, Name: '名前.x:y_z-1' });
      assert.equal(created.status, 200, created.text);
      const listed = await callV1(s.url, s.root, 'ListAccessTokens', { 'AccessTokenId.1': created.body.AccessTokenId });
      const item = listed.body.AccessTokens.AccessToken[0];
      assert.equal(item.Description, AWKWARD);
      assert.equal(item.Name, '名前.x:y_z-1');
    });
  }

  it("raw unescaped !'()* and + meaning space in the query are verified after decoding", async () => {
    // A client that leaves !'()* unescaped signs the same decoded values.
    const { v1Params } = await import('./helpers/sign.ts');
    const params = v1Params(s.root, 'CreateAccessToken', { Description: "x!'()*y z" });
    const query = Object.entries(params)
      .map(([k, v]) => `${k}=${encodeURIComponent(v).replace(/%20/g, '+')}`)
      .join('&');
    const r = await fetch(`${s.url}/?${query}`);
    const body = await r.json();
    assert.equal(r.status, 200, JSON.stringify(body));
    const listed = await callV1(s.url, s.root, 'ListAccessTokens', { 'AccessTokenId.1': body.AccessTokenId });
    assert.equal(listed.body.AccessTokens.AccessToken[0].Description, "x!'()*y z");
  });
});
