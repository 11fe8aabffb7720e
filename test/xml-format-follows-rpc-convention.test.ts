import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { callV1, REQUEST_ID } from './helpers/sign.ts';

describe('Format=XML answers in the RPC XML convention', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer();
  });
  after(() => s.close());

  it('a success body has <ActionResponse> as root and repeated list elements', async () => {
    const created = await callV1(s.url, s.root, 'CreateAccessToken', { Name: 'xml_a', Description: '<b>&"\'' }, { format: 'xml' });
    assert.equal(created.status, 200);
    assert.equal(created.headers.get('content-type'), 'application/xml;charset=utf-8');
    const id = /<AccessTokenId>(at-[a-z0-9]{20})<\/AccessTokenId>/.exec(created.text)?.[1];
    assert.ok(id, created.text);
    assert.match(created.text, /^<\?xml version="1.0" encoding="UTF-8"\?><CreateAccessTokenResponse><RequestId>[0-9A-F-]{36}<\/RequestId>/);
    await callV1(s.url, s.root, 'CreateAccessToken', { Name: 'xml_b' });
    const listed = await callV1(s.url, s.root, 'ListAccessTokens', { PageSize: '2' }, { format: 'XML' });
    assert.match(
      listed.text,
      /<ListAccessTokensResponse><RequestId>.+<\/RequestId><TotalCount>2<\/TotalCount><PageNumber>1<\/PageNumber><PageSize>2<\/PageSize><AccessTokens><AccessToken><AccessTokenId>at-/,
    );
    assert.equal(listed.text.match(/<AccessToken>/g)?.length, 2);
    assert.ok(listed.text.includes('<Description>&lt;b&gt;&amp;&quot;&apos;</Description>'));
  });

  it('an error body is <Error> with RequestId, HostId, Code, Message, Recommend', async () => {
    const r = await callV1(s.url, s.root, 'CreateAccessToken', { Count: '0' }, { format: 'XML' });
    assert.equal(r.status, 400);
    assert.equal(r.headers.get('content-type'), 'application/xml;charset=utf-8');
    const m =
      /^<\?xml version="1.0" encoding="UTF-8"\?><Error><RequestId>([^<]+)<\/RequestId><HostId>[^<]+<\/HostId><Code>InvalidParameter.Count<\/Code><Message>[^<]+<\/Message><Recommend>[^<]*<\/Recommend><\/Error>$/.exec(
        r.text,
      );
    assert.ok(m, r.text);
    assert.match(m[1]!, REQUEST_ID);
    assert.equal(r.headers.get('x-acs-request-id'), m[1]);
  });
});
