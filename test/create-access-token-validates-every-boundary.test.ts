import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { callV1 } from './helpers/sign.ts';

describe('CreateAccessToken validates every parameter boundary', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer();
  });
  after(() => s.close());

  const create = (params: Record<string, string>) => callV1(s.url, s.root, 'CreateAccessToken', params, { method: 'POST' });

  async function accepted(params: Record<string, string>) {
    const r = await create(params);
    assert.equal(r.status, 200, `${JSON.stringify(params)} -> ${r.text}`);
    return r.body;
  }

  async function refused(params: Record<string, string>, code: string, messagePart?: RegExp) {
    const r = await create(params);
    assert.equal(r.status, 400, `${JSON.stringify(params)} -> ${r.text}`);
    assert.equal(r.body.Code, code);
    if (messagePart) assert.match(r.body.Message, messagePart);
  }

  it('defaults: Count 100, TimeToLiveInDays 30, expiry 30 days after creation', async () => {
    const { AccessTokenId } = await accepted({});
    const item = (await callV1(s.url, s.root, 'ListAccessTokens', { 'AccessTokenId.1': AccessTokenId })).body.AccessTokens.AccessToken[0];
    assert.equal(item.Count, '100');
    assert.equal(item.TimeToLiveInDays, '30');
    assert.equal(item.RegisteredCount, '0');
    assert.equal(Date.parse(item.ExpirationTime) - Date.parse(item.CreationTime), 30 * 86_400_000);
    assert.match(item.CreationTime, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
  });

  it('Count: 1 and 1000 accepted; 0, 1001, abc, 5.5, -1 refused with InvalidParameter.Count', async () => {
    await accepted({ Count: '1' });
    await accepted({ Count: '1000' });
    for (const bad of ['0', '1001', 'abc', '5.5', '-1', '1e3']) await refused({ Count: bad }, 'InvalidParameter.Count', /1 to 1000/);
  });

  it('TimeToLiveInDays: 1 and 90 accepted; 0, 91, x refused', async () => {
    await accepted({ TimeToLiveInDays: '1' });
    await accepted({ TimeToLiveInDays: '90' });
    for (const bad of ['0', '91', 'x', '2.5']) await refused({ TimeToLiveInDays: bad }, 'InvalidParameter.TimeToLiveInDays', /1 to 90/);
  });

  it('Name: 2 and 128 code points accepted, CJK and other scripts count as letters', async () => {
    await accepted({ Name: 'ab' });
    await accepted({ Name: `a${'b'.repeat(127)}` });
    await accepted({ Name: '迁移源' });
    await accepted({ Name: `中${'文'.repeat(127)}` });
    await accepted({ Name: 'Ωmega.v1:prod_east-2' });
    await accepted({ Name: 'Москва' });
  });

  it('Name: 1 and 129 characters, a leading digit or symbol, bad characters and http(s):// are refused', async () => {
    await refused({ Name: 'a' }, 'InvalidParameter.Name', /2 to 128/);
    await refused({ Name: `a${'b'.repeat(128)}` }, 'InvalidParameter.Name', /2 to 128/);
    await refused({ Name: '1abc' }, 'InvalidParameter.Name', /start with a letter/);
    await refused({ Name: '_abc' }, 'InvalidParameter.Name', /start with a letter/);
    await refused({ Name: 'ab c' }, 'InvalidParameter.Name', /only letters/);
    await refused({ Name: 'ab/c' }, 'InvalidParameter.Name', /only letters/);
    await refused({ Name: 'http://x' }, 'InvalidParameter.Name', /http/);
    await refused({ Name: 'https://x' }, 'InvalidParameter.Name', /http/);
  });

  it('Description: 0 and 256 accepted; 257 and http(s):// refused', async () => {
    await accepted({ Description: '' });
    await accepted({ Description: 'd'.repeat(256) });
    await accepted({ Description: '描'.repeat(256) });
    await refused({ Description: 'd'.repeat(257) }, 'InvalidParameter.Description', /0 to 256/);
    await refused({ Description: 'https://example' }, 'InvalidParameter.Description', /http/);
  });

  it('IpAddressRange: addresses and CIDRs of both families accepted and normalised; junk refused', async () => {
    const { AccessTokenId } = await accepted({ IpAddressRange: '10.0.0.0/8, 192.168.1.7,2001:db8::/32 , ::1' });
    const item = (await callV1(s.url, s.root, 'ListAccessTokens', { 'AccessTokenId.1': AccessTokenId })).body.AccessTokens.AccessToken[0];
    assert.equal(item.IpAddressRange, '10.0.0.0/8,192.168.1.7,2001:db8::/32,::1');
    for (const bad of ['10.0.0.0/33', 'example.com', '1.2.3', '::1/129', '10.0.0.1,,'])
      await refused({ IpAddressRange: bad }, 'InvalidParameter.IpAddressRange');
  });

  it('Format other than JSON or XML: InvalidParameter.Format', async () => {
    const r = await callV1(s.url, s.root, 'CreateAccessToken', {}, { format: 'YAML' });
    assert.equal(r.status, 400);
    assert.equal(r.body.Code, 'InvalidParameter.Format');
  });
});
