import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { SMCD_BIN } from './helpers/process-server.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { callRaw, callV1, callV3, encodeForm, REQUEST_ID, timestampNow, v1Params } from './helpers/sign.ts';

function expectError(r: { status: number; body: any; text: string }, status: number, code: string) {
  assert.equal(r.status, status, r.text);
  assert.equal(r.body?.Code, code, r.text);
  assert.match(r.body.RequestId, REQUEST_ID);
  assert.equal(typeof r.body.Message, 'string');
}

describe('every authentication failure gets its SMC error code', () => {
  let s: TestServer;
  let limited: { id: string; secret: string };
  let disabled: { id: string; secret: string };
  before(async () => {
    s = await startTestServer({ authFailureLimit: 10_000 });
    const run = (args: string[]) =>
      JSON.parse(execFileSync(process.execPath, [SMCD_BIN, 'keys', ...args, '--data-dir', s.dir, '--output', 'json'], { encoding: 'utf8' }));
    const a = run(['create', '--actions', 'ListAccessTokens']);
    limited = { id: a.AccessKeyId, secret: a.AccessKeySecret };
    const b = run(['create']);
    disabled = { id: b.AccessKeyId, secret: b.AccessKeySecret };
    execFileSync(process.execPath, [SMCD_BIN, 'keys', 'disable', disabled.id, '--data-dir', s.dir]);
  });
  after(() => s.close());

  it('no signature at all: IncompleteSignature', async () => {
    expectError(await callRaw(s.url, 'Action=ListAccessTokens&Version=2019-06-01'), 400, 'IncompleteSignature');
  });

  for (const name of ['AccessKeyId', 'Signature', 'SignatureNonce', 'Timestamp', 'SignatureMethod']) {
    it(`missing ${name}: Missing${name}`, async () => {
      expectError(await callV1(s.url, s.root, 'ListAccessTokens', {}, { drop: [name] }), 400, `Missing${name}`);
    });
  }

  it('unsupported signature method: InvalidSignatureMethod', async () => {
    expectError(await callV1(s.url, s.root, 'ListAccessTokens', {}, { signatureMethod: 'HMAC-SHA256' }), 400, 'InvalidSignatureMethod');
    const r = await fetch(`${s.url}/`, {
      method: 'POST',
      headers: {
        authorization: 'ACS3-RSA-SHA256 Credential=x,SignedHeaders=host,Signature=00',
        'x-acs-action': 'ListAccessTokens',
        'x-acs-version': '2019-06-01',
      },
    });
    assert.equal(r.status, 400);
    assert.equal((await r.json()).Code, 'InvalidSignatureMethod');
  });

  it('malformed V3 Authorization: IncompleteSignature', async () => {
    const r = await fetch(`${s.url}/`, {
      method: 'POST',
      headers: { authorization: 'ACS3-HMAC-SHA256 Credential=x', 'x-acs-action': 'ListAccessTokens', 'x-acs-version': '2019-06-01' },
    });
    assert.equal(r.status, 400);
    assert.equal((await r.json()).Code, 'IncompleteSignature');
  });

  it('a nonce over 256 characters: IncompleteSignature', async () => {
    expectError(await callV1(s.url, s.root, 'ListAccessTokens', {}, { nonce: 'n'.repeat(257) }), 400, 'IncompleteSignature');
    expectError(await callV3(s.url, s.root, 'ListAccessTokens', {}, { nonce: 'n'.repeat(257) }), 400, 'IncompleteSignature');
  });

  it('unparseable timestamp: InvalidTimeStamp.Format (V1 and V3)', async () => {
    expectError(await callV1(s.url, s.root, 'ListAccessTokens', {}, { timestamp: '29/11/2026 10:00' }), 400, 'InvalidTimeStamp.Format');
    expectError(await callV3(s.url, s.root, 'ListAccessTokens', {}, { date: 'yesterday' }), 400, 'InvalidTimeStamp.Format');
  });

  it('timestamp more than 15 minutes away: InvalidTimeStamp.Expired; within: accepted', async () => {
    expectError(await callV1(s.url, s.root, 'ListAccessTokens', {}, { timestamp: timestampNow(-16 * 60_000) }), 400, 'InvalidTimeStamp.Expired');
    expectError(await callV3(s.url, s.root, 'ListAccessTokens', {}, { date: timestampNow(16 * 60_000) }), 400, 'InvalidTimeStamp.Expired');
    assert.equal((await callV1(s.url, s.root, 'ListAccessTokens', {}, { timestamp: timestampNow(-14 * 60_000) })).status, 200);
  });

  it('unknown key id: 404 InvalidAccessKeyId.NotFound', async () => {
    expectError(await callV1(s.url, { id: 'LTAI00000000000000000000', secret: 'x' }, 'ListAccessTokens'), 404, 'InvalidAccessKeyId.NotFound');
    expectError(await callV3(s.url, { id: 'nonsense', secret: 'x' }, 'ListAccessTokens'), 404, 'InvalidAccessKeyId.NotFound');
  });

  it('disabled access key: InvalidAccessKeyId.Inactive', async () => {
    expectError(await callV1(s.url, disabled, 'ListAccessTokens'), 400, 'InvalidAccessKeyId.Inactive');
  });

  it('wrong secret: SignatureDoesNotMatch, and the message does not echo the secret', async () => {
    const wrong = { id: s.root.id, secret: 'WrongSecretWrongSecretWrong123' };
    for (const r of [await callV1(s.url, wrong, 'ListAccessTokens'), await callV3(s.url, wrong, 'ListAccessTokens')]) {
      expectError(r, 400, 'SignatureDoesNotMatch');
      assert.ok(!r.text.includes(s.root.secret) && !r.text.includes(wrong.secret));
    }
  });

  it('a parameter changed after signing: SignatureDoesNotMatch', async () => {
    const r = await callV1(s.url, s.root, 'CreateAccessToken', { Count: '1' }, { unsigned: { Count: '1000' } });
    expectError(r, 400, 'SignatureDoesNotMatch');
  });

  it('V3 body that does not match x-acs-content-sha256: SignatureDoesNotMatch', async () => {
    const r = await callV3(s.url, s.root, 'ListAccessTokens', { Name: 'x' }, { body: true, contentSha256: 'a'.repeat(64) });
    expectError(r, 400, 'SignatureDoesNotMatch');
  });

  it('V3 with an x-acs-* header left unsigned: IncompleteSignature', async () => {
    const r = await fetch(`${s.url}/`, {
      method: 'POST',
      headers: {
        authorization: 'ACS3-HMAC-SHA256 Credential=x,SignedHeaders=host,Signature=00',
        'x-acs-action': 'ListAccessTokens',
        'x-acs-version': '2019-06-01',
        'x-acs-date': timestampNow(),
        'x-acs-signature-nonce': randomUUID(),
        'x-acs-content-sha256': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      },
    });
    assert.equal(r.status, 400);
    assert.equal((await r.json()).Code, 'IncompleteSignature');
  });

  it('a replayed nonce: SignatureNonceUsed (V1 and V3)', async () => {
    const nonce = randomUUID();
    assert.equal((await callV1(s.url, s.root, 'ListAccessTokens', {}, { nonce })).status, 200);
    expectError(await callV1(s.url, s.root, 'ListAccessTokens', {}, { nonce }), 400, 'SignatureNonceUsed');
    const n3 = randomUUID();
    assert.equal((await callV3(s.url, s.root, 'ListAccessTokens', {}, { nonce: n3 })).status, 200);
    expectError(await callV3(s.url, s.root, 'ListAccessTokens', {}, { nonce: n3 }), 400, 'SignatureNonceUsed');
  });

  it('a badly signed request cannot burn a nonce: the nonce is recorded only after the signature is proven', async () => {
    const nonce = randomUUID();
    const bad = await callV1(s.url, { id: s.root.id, secret: 'bad' }, 'ListAccessTokens', {}, { nonce });
    expectError(bad, 400, 'SignatureDoesNotMatch');
    assert.equal((await callV1(s.url, s.root, 'ListAccessTokens', {}, { nonce })).status, 200);
  });

  it('a key without the action: 403 Forbidden.RAM; with it: 200', async () => {
    expectError(await callV1(s.url, limited, 'CreateAccessToken'), 403, 'Forbidden.RAM');
    assert.equal((await callV1(s.url, limited, 'ListAccessTokens')).status, 200);
  });

  it('checks run in order: an unknown action wins over a missing signature, Version over signature', async () => {
    expectError(await callRaw(s.url, 'Action=NoSuchThing&Version=2019-06-01'), 404, 'InvalidAction.NotFound');
    expectError(await callRaw(s.url, 'Action=ListAccessTokens'), 400, 'MissingVersion');
    expectError(await callRaw(s.url, 'Action=ListAccessTokens&Version=2014-05-26'), 400, 'InvalidVersion');
    expectError(await callRaw(s.url, 'Version=2019-06-01'), 400, 'MissingAction');
    // The signature is checked before the parameters: a bad Count with a bad signature is a signature error.
    const all = v1Params({ id: s.root.id, secret: 'wrong' }, 'CreateAccessToken', { Count: 'abc' });
    expectError(await callRaw(s.url, encodeForm(all)), 400, 'SignatureDoesNotMatch');
  });

  it('V1 must sign Action and Version: unsigned x-acs-action / x-acs-version headers do not name a V1 operation', async () => {
    // A correctly signed V1 list, with Action and Version moved out of the signed parameters into headers.
    const all = v1Params(s.root, 'ListAccessTokens', {});
    const { Action, Version, ...rest } = all;
    const noAction = await callRaw(s.url, encodeForm({ ...rest, Version: Version! }), { headers: { 'x-acs-action': 'CreateAccessToken' } });
    expectError(noAction, 400, 'MissingAction');
    const noVersion = await callRaw(s.url, encodeForm({ ...rest, Action: Action! }), { headers: { 'x-acs-version': '2019-06-01' } });
    expectError(noVersion, 400, 'MissingVersion');
    // Signed without Action: a header cannot choose what the signature authorizes.
    const signedWithout = v1Params(s.root, 'ListAccessTokens', {});
    delete signedWithout.Action;
    expectError(await callRaw(s.url, encodeForm(signedWithout), { headers: { 'x-acs-action': 'CreateAccessToken' } }), 400, 'MissingAction');
    assert.equal((await callRaw(s.url, encodeForm(all))).status, 200, 'the same request with its signed Action works');
  });

  it('other HTTP methods: 403 UnsupportedHTTPMethod', async () => {
    for (const method of ['PUT', 'DELETE', 'PATCH']) {
      const r = await fetch(`${s.url}/?Action=ListAccessTokens`, { method });
      assert.equal(r.status, 403);
      const body = await r.json();
      assert.equal(body.Code, 'UnsupportedHTTPMethod');
      assert.equal(r.headers.get('x-acs-request-id'), body.RequestId);
    }
  });
});
