import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenApi, * as $OpenApi from '@alicloud/openapi-client';
import RPCClient from '@alicloud/pop-core';
import * as $Util from '@alicloud/tea-util';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { REQUEST_ID } from './helpers/sign.ts';

// Both packages are CommonJS; under ESM their default export is nested once more.
const OpenApiClient: any = (OpenApi as any).default ?? OpenApi;
const PopCore: any = (RPCClient as any).default ?? RPCClient;

function openApiClient(s: TestServer, signatureAlgorithm?: string) {
  const config = new $OpenApi.Config({
    accessKeyId: s.root.id,
    accessKeySecret: s.root.secret,
    endpoint: new URL(s.url).host,
    protocol: 'http',
    ...(signatureAlgorithm ? { signatureAlgorithm } : {}),
  });
  return new OpenApiClient(config);
}

function rpcParams(action: string) {
  return new $OpenApi.Params({
    action,
    version: '2019-06-01',
    protocol: 'HTTP',
    pathname: '/',
    method: 'POST',
    authType: 'AK',
    style: 'RPC',
    reqBodyType: 'formData',
    bodyType: 'json',
  });
}

async function callOpenApi(client: any, action: string, query: Record<string, string>) {
  const request = new $OpenApi.OpenApiRequest({ query });
  const runtime = new $Util.RuntimeOptions({});
  return (await client.callApi(rpcParams(action), request, runtime)) as { statusCode: number; body: any };
}

describe('unmodified Alibaba Cloud clients work against smcd by changing only the endpoint', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer();
  });
  after(() => s.close());

  for (const method of ['GET', 'POST'] as const) {
    it(`@alicloud/pop-core (V1, ${method}) creates and lists a code`, async () => {
      const client = new PopCore({ accessKeyId: s.root.id, accessKeySecret: s.root.secret, endpoint: s.url, apiVersion: '2019-06-01' });
      const name = `pop_${method}`;
      const created: any = await client.request(
        'CreateAccessToken',
        { Name: name, Description: 'via pop-core', Count: 7, TimeToLiveInDays: 3 },
        { method },
      );
      assert.match(created.RequestId, REQUEST_ID);
      assert.match(created.AccessTokenId, /^at-[a-z0-9]{20}$/);
      assert.match(created.AccessTokenCode, /^[A-Za-z0-9]{32}$/);
      const listed: any = await client.request('ListAccessTokens', { Name: name }, { method });
      assert.equal(listed.TotalCount, 1);
      const item = listed.AccessTokens.AccessToken[0];
      assert.deepEqual(
        { id: item.AccessTokenId, count: item.Count, ttl: item.TimeToLiveInDays, status: item.Status, description: item.Description },
        { id: created.AccessTokenId, count: '7', ttl: '3', status: 'activated', description: 'via pop-core' },
      );
    });
  }

  it('@alicloud/pop-core surfaces an SMC error Code', async () => {
    const client = new PopCore({ accessKeyId: s.root.id, accessKeySecret: s.root.secret, endpoint: s.url, apiVersion: '2019-06-01' });
    await assert.rejects(client.request('CreateAccessToken', { Count: 1001 }, { method: 'POST' }), (err: any) => {
      assert.equal(err.code, 'InvalidParameter.Count');
      assert.match(err.data.RequestId, REQUEST_ID);
      return true;
    });
  });

  it('@alicloud/pop-core with a wrong secret gets SignatureDoesNotMatch', async () => {
    const client = new PopCore({ accessKeyId: s.root.id, accessKeySecret: 'x'.repeat(30), endpoint: s.url, apiVersion: '2019-06-01' });
    await assert.rejects(client.request('ListAccessTokens', {}, {}), (err: any) => err.code === 'SignatureDoesNotMatch');
  });

  for (const algorithm of [undefined, 'v2'] as const) {
    const label = algorithm ? "signatureAlgorithm 'v2' (V1 HMAC-SHA1)" : 'default ACS3-HMAC-SHA256 (V3)';
    it(`@alicloud/openapi-client with ${label} creates and lists a code`, async () => {
      const client = openApiClient(s, algorithm);
      const name = `openapi_${algorithm ?? 'v3'}`;
      const created = await callOpenApi(client, 'CreateAccessToken', { Name: name, Count: '11', Description: "a b*~!'()+&=中文" });
      assert.equal(created.statusCode, 200);
      assert.match(created.body.AccessTokenId, /^at-[a-z0-9]{20}$/);
      assert.match(created.body.AccessTokenCode, /^[A-Za-z0-9]{32}$/);
      const listed = await callOpenApi(client, 'ListAccessTokens', { 'AccessTokenId.1': created.body.AccessTokenId });
      assert.equal(listed.body.TotalCount, 1);
      assert.equal(listed.body.AccessTokens.AccessToken[0].Name, name);
      assert.equal(listed.body.AccessTokens.AccessToken[0].Count, '11');
      assert.equal(listed.body.AccessTokens.AccessToken[0].Description, "a b*~!'()+&=中文");
    });

    it(`@alicloud/openapi-client with ${label} sees SMC error codes`, async () => {
      const client = openApiClient(s, algorithm);
      await assert.rejects(callOpenApi(client, 'CreateAccessToken', { TimeToLiveInDays: '91' }), (err: any) => {
        assert.equal(err.code, 'InvalidParameter.TimeToLiveInDays');
        assert.equal(err.data.statusCode, 400);
        return true;
      });
    });
  }
});
