import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import OpenApiUtilModule from '@alicloud/openapi-util';
import { v1Signature, v1StringToSign } from '../src/rpc/sign-v1.ts';
import { sha256Hex, v3CanonicalRequest, v3Signature } from '../src/rpc/sign-v3.ts';

const OpenApiUtil = ((OpenApiUtilModule as any).default ?? OpenApiUtilModule) as any;

describe('signature computation matches Alibaba Cloud', () => {
  it('V1 reproduces the published vector (testid/testsecret, DescribeRegions)', () => {
    const params = {
      AccessKeyId: 'testid',
      Action: 'DescribeRegions',
      Format: 'XML',
      SignatureMethod: 'HMAC-SHA1',
      SignatureNonce: '3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf',
      SignatureVersion: '1.0',
      Timestamp: '2016-02-23T12:46:24Z',
      Version: '2014-05-26',
    };
    assert.equal(
      v1StringToSign('GET', Object.entries(params)),
      'GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26',
    );
    assert.equal(v1Signature('GET', Object.entries(params), 'testsecret'), 'OLeaidS1JvxuMvnyHOwuJ+uX5qY=');
  });

  it('V1 agrees with @alicloud/openapi-util getRPCSignature on awkward values', () => {
    const params = { Action: 'CreateAccessToken', Name: "名字 a*b~c!d'e(f)g+h&i=j", Description: '%20 literal', Count: '5', Zed: '', a: 'lower' };
    for (const method of ['GET', 'POST']) {
      assert.equal(v1Signature(method, Object.entries(params), 'secret'), OpenApiUtil.getRPCSignature(params, method, 'secret'));
    }
  });

  it('V3 agrees with @alicloud/openapi-util getAuthorization', () => {
    const body = 'Name=%E5%90%8D%20x&Count=3';
    const headers: Record<string, string> = {
      host: '127.0.0.1:8080',
      'x-acs-action': 'CreateAccessToken',
      'x-acs-version': '2019-06-01',
      'x-acs-date': '2026-11-29T10:00:00Z',
      'x-acs-signature-nonce': 'abc-123',
      'x-acs-content-sha256': sha256Hex(body),
      'content-type': 'application/x-www-form-urlencoded',
    };
    const query = { Description: "a b*~!'()", 'AccessTokenId.1': 'at-x', Empty: '' };
    const expected = OpenApiUtil.getAuthorization(
      { method: 'POST', pathname: '/', query, headers },
      'ACS3-HMAC-SHA256',
      headers['x-acs-content-sha256'],
      'LTAIexample',
      'secret',
    ) as string;
    const signedHeaders = Object.keys(headers).sort();
    const canonical = v3CanonicalRequest({
      method: 'POST',
      path: '/',
      query: Object.entries(query),
      headers,
      signedHeaders,
      payloadHash: headers['x-acs-content-sha256']!,
    });
    const ours = `ACS3-HMAC-SHA256 Credential=LTAIexample,SignedHeaders=${signedHeaders.join(';')},Signature=${v3Signature(canonical, 'secret')}`;
    assert.equal(ours, expected);
  });
});
