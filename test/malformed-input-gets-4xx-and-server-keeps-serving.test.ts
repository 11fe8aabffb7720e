import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { rawHttp } from './helpers/raw-http.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { callRaw, callV1, REQUEST_ID } from './helpers/sign.ts';

describe('malformed input gets a 4xx SMC error, never a 5xx, and the server keeps serving', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({ authFailureLimit: 100_000 });
  });
  after(async () => {
    // Still healthy after everything below.
    const r = await callV1(s.url, s.root, 'ListAccessTokens');
    assert.equal(r.status, 200);
    await s.close();
  });

  function smcError(status: number, code: string, r: { status: number; json?: any; body?: any }) {
    const body = r.json ?? r.body;
    assert.equal(r.status, status, JSON.stringify(body));
    assert.equal(body?.Code, code);
    assert.match(body.RequestId, REQUEST_ID);
  }

  it('invalid percent-encoding: InvalidParameter.Encoding', async () => {
    smcError(400, 'InvalidParameter.Encoding', await callRaw(s.url, 'Action=ListAccessTokens&Version=2019-06-01&Name=%ZZ'));
    smcError(400, 'InvalidParameter.Encoding', await callRaw(s.url, 'Action=ListAccessTokens&Name=%4'));
  });

  it('invalid UTF-8, escaped or raw: InvalidParameter.Encoding', async () => {
    smcError(400, 'InvalidParameter.Encoding', await callRaw(s.url, 'Action=ListAccessTokens&Name=%C3%28'));
    const raw = Buffer.concat([
      Buffer.from('GET /?Action=ListAccessTokens&Name='),
      Buffer.from([0xff, 0xfe]),
      Buffer.from(' HTTP/1.1\r\nHost: x\r\n\r\n'),
    ]);
    const r = await rawHttp(s.port, raw);
    assert.ok(r.status >= 400 && r.status < 500, `status ${r.status}`);
    assert.ok(r.json?.Code, r.body);
  });

  it('a parameter repeated in the query, or in both query and body: InvalidParameter.Duplicate', async () => {
    smcError(400, 'InvalidParameter.Duplicate', await callRaw(s.url, 'Action=ListAccessTokens&Action=CreateAccessToken'));
    const r = await fetch(`${s.url}/?Action=ListAccessTokens&Version=2019-06-01`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'Version=2019-06-01',
    });
    smcError(400, 'InvalidParameter.Duplicate', { status: r.status, body: await r.json() });
  });

  it('an unknown content type with a body: 415 UnsupportedMediaType', async () => {
    for (const type of ['application/json', 'text/plain', 'multipart/form-data; boundary=x']) {
      const r = await fetch(`${s.url}/`, { method: 'POST', headers: { 'content-type': type }, body: '{"Action":"ListAccessTokens"}' });
      smcError(415, 'UnsupportedMediaType', { status: r.status, body: await r.json() });
    }
  });

  it('a body over 64 KiB: 413 without reading it, declared or chunked', async () => {
    const declared = await rawHttp(
      s.port,
      `POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${64 * 1024 + 1}\r\n\r\nAction=x`,
    );
    smcError(413, 'RequestEntityTooLarge', declared);
    const big = `Name=${'a'.repeat(70 * 1024)}`;
    const r = await fetch(`${s.url}/`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new Blob([big]).stream(),
      duplex: 'half',
    } as RequestInit);
    smcError(413, 'RequestEntityTooLarge', { status: r.status, body: await r.json() });
  });

  it('a URL over 16 KiB: 414; huge headers: 431; both as SMC errors', async () => {
    smcError(414, 'RequestURITooLong', await callRaw(s.url, `Action=ListAccessTokens&Name=${'a'.repeat(17 * 1024)}`));
    const r = await rawHttp(s.port, `GET /?Action=ListAccessTokens HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(70 * 1024)}\r\n\r\n`);
    smcError(431, 'RequestHeaderFieldsTooLarge', r);
  });

  it('bytes that are not HTTP: 400 BadRequest as SMC JSON', async () => {
    const r = await rawHttp(s.port, 'HELLO THERE\r\n\r\n');
    smcError(400, 'BadRequest', r);
  });

  it('parameters that are not what the action declares, under a valid signature: InvalidParameter', async () => {
    const cases: Array<[Record<string, string>, string]> = [
      [{ 'AccessTokenId.x': 'a' }, 'InvalidParameter.AccessTokenId'],
      [{ 'AccessTokenId.1': 'a'.repeat(65) }, 'InvalidParameter.AccessTokenId'],
      [{ PageSize: '9'.repeat(30) }, 'InvalidParameter.PageSize'],
    ];
    for (const [params, code] of cases) smcError(400, code, await callV1(s.url, s.root, 'ListAccessTokens', params));
    const tooMany = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`AccessTokenId.${i + 1}`, `at-${i}`]));
    smcError(400, 'InvalidParameter.AccessTokenId', await callV1(s.url, s.root, 'ListAccessTokens', tooMany));
  });

  it('the path is only /: other paths get a 404 SMC error', async () => {
    const r = await fetch(`${s.url}/nothing?Action=ListAccessTokens`);
    smcError(404, 'NotFound', { status: r.status, body: await r.json() });
  });
});
