import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import RPCClient from '@alicloud/pop-core';
import { sourceProof } from '../src/crypto/source-proof.ts';
import { startTestServer, type TestServer, tempDir } from './helpers/server.ts';
import { type Creds, callV1, REQUEST_ID } from './helpers/sign.ts';
import { openTestDatabase, STORE_KINDS, storeSkipReason } from './helpers/stores.ts';

// CommonJS under ESM: the default export is nested once more.
const PopCore: any = (RPCClient as any).default ?? RPCClient;

/** `Tag.N.Key` / `Tag.N.Value` parameters from pairs. */
const tagParams = (tags: Array<[string, string | undefined]>, name = 'Tag') =>
  Object.fromEntries(
    tags.flatMap(([k, v], i) => [[`${name}.${i + 1}.Key`, k], ...(v === undefined ? [] : [[`${name}.${i + 1}.Value`, v]])]),
  ) as Record<string, string>;

const idParams = (ids: string[], name = 'ResourceId') => Object.fromEntries(ids.map((id, i) => [`${name}.${i + 1}`, id]));

for (const kind of STORE_KINDS) {
  describe(`tags on sources and activation codes, through the wire (${kind})`, { skip: await storeSkipReason(kind) }, () => {
    let s: TestServer;
    let dir: string;
    let db: { url: string; drop(): Promise<void> };

    before(async () => {
      dir = tempDir('smcd-tags-');
      db = await openTestDatabase(kind, dir);
      s = await startTestServer({ dir, database: db.url });
    });
    after(async () => {
      await s.close();
      await db.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    const call = (action: string, params: Record<string, string> = {}, creds: Creds = s.root) => callV1(s.url, creds, action, params);
    async function ok(action: string, params: Record<string, string> = {}, creds: Creds = s.root) {
      const r = await call(action, params, creds);
      assert.equal(r.status, 200, `${action}: ${r.text}`);
      assert.match(r.body.RequestId, REQUEST_ID);
      return r.body;
    }
    async function refused(action: string, params: Record<string, string>, status: number, code: string) {
      const r = await call(action, params);
      assert.equal(r.status, status, `${action} ${JSON.stringify(params)}: ${r.text}`);
      assert.equal(r.body.Code, code, r.text);
      assert.match(r.body.RequestId, REQUEST_ID);
      return r.body;
    }
    async function newCode(params: Record<string, string> = {}): Promise<Creds> {
      const b = await ok('CreateAccessToken', params);
      return { id: b.AccessTokenId, secret: b.AccessTokenCode };
    }
    async function importWith(code: Creds, machineId: string) {
      return ok('ImportSourceServer', { MachineId: machineId, Hostname: machineId }, code);
    }
    const tokenTags = async (id: string) =>
      (await ok('ListAccessTokens', { 'AccessTokenId.1': id })).AccessTokens.AccessToken[0]?.Tags.Tag as Array<{ Key: string; Value: string }>;
    const sourceTags = async (id: string) =>
      (await ok('DescribeSourceServers', { 'SourceId.1': id })).SourceServers.SourceServer[0]?.Tags.Tag as Array<{ Key: string; Value: string }>;

    it('every item of both lists carries Tags.Tag[], empty when untagged', async () => {
      const code = await newCode();
      const src = await importWith(code, `m-untagged-${kind}`);
      assert.deepEqual((await ok('ListAccessTokens', { 'AccessTokenId.1': code.id })).AccessTokens.AccessToken[0].Tags, { Tag: [] });
      assert.deepEqual((await ok('DescribeSourceServers', { 'SourceId.1': src.SourceId })).SourceServers.SourceServer[0].Tags, { Tag: [] });
    });

    it('TagResources tags codes and sources, replaces a value, and UntagResources removes keys or all', async () => {
      const code = await newCode();
      const src = await importWith(code, `m-tag-${kind}`);
      await ok('TagResources', {
        ResourceType: 'accesstoken',
        ...idParams([code.id]),
        ...tagParams([
          ['env', 'prod'],
          ['team', undefined],
        ]),
      });
      assert.deepEqual(await tokenTags(code.id), [
        { Key: 'env', Value: 'prod' },
        { Key: 'team', Value: '' },
      ]);
      await ok('TagResources', { ResourceType: 'accesstoken', ...idParams([code.id]), ...tagParams([['env', 'dev']]) });
      assert.deepEqual(await tokenTags(code.id), [
        { Key: 'env', Value: 'dev' },
        { Key: 'team', Value: '' },
      ]);
      await ok('TagResources', {
        ResourceType: 'sourceserver',
        ...idParams([src.SourceId]),
        ...tagParams([
          ['a', '1'],
          ['b', '2'],
          ['c', '3'],
        ]),
      });
      await ok('UntagResources', { ResourceType: 'sourceserver', ...idParams([src.SourceId]), 'TagKey.1': 'a', 'TagKey.2': 'c' });
      assert.deepEqual(await sourceTags(src.SourceId), [{ Key: 'b', Value: '2' }]);
      // TagKey.N wins over All, as in SMC.
      await ok('UntagResources', { ResourceType: 'accesstoken', ...idParams([code.id]), 'TagKey.1': 'team', All: 'true' });
      assert.deepEqual(await tokenTags(code.id), [{ Key: 'env', Value: 'dev' }]);
      await ok('UntagResources', { ResourceType: 'accesstoken', ...idParams([code.id]), All: 'true' });
      assert.deepEqual(await tokenTags(code.id), []);
    });

    it('TagResources validates ResourceType, ResourceId.N, keys and values by the SMC rules', async () => {
      const code = await newCode();
      const base = { ResourceType: 'accesstoken', ...idParams([code.id]) };
      await refused('TagResources', { ...idParams([code.id]), ...tagParams([['k', 'v']]) }, 400, 'MissingResourceType');
      await refused('TagResources', { ...base, ResourceType: 'instance', ...tagParams([['k', 'v']]) }, 400, 'InvalidParameter.ResourceType');
      await refused('TagResources', { ResourceType: 'accesstoken', ...tagParams([['k', 'v']]) }, 400, 'MissingResourceId');
      const fiftyOne = Array.from({ length: 51 }, (_, i) => `at-${String(i).padStart(20, '0')}`);
      await refused(
        'TagResources',
        { ResourceType: 'accesstoken', ...idParams(fiftyOne), ...tagParams([['k', 'v']]) },
        400,
        'InvalidParameter.ResourceId',
      );
      await refused('TagResources', base, 400, 'MissingTag');
      await refused('TagResources', { ...base, 'Tag.1.Value': 'v' }, 400, 'InvalidParameter.TagKey');
      await refused('TagResources', { ...base, ...tagParams([['', 'v']]) }, 400, 'InvalidParameter.TagKey');
      await refused('TagResources', { ...base, ...tagParams([['k'.repeat(65), 'v']]) }, 400, 'InvalidParameter.TagKey');
      for (const key of ['acs:env', 'aliyun-env', 'ALIYUNenv', 'see http://x', 'https://x']) {
        await refused('TagResources', { ...base, ...tagParams([[key, 'v']]) }, 400, 'InvalidParameter.TagKey');
      }
      await refused('TagResources', { ...base, ...tagParams([['k', 'v'.repeat(65)]]) }, 400, 'InvalidParameter.TagValue');
      await refused('TagResources', { ...base, ...tagParams([['k', 'at https://x']]) }, 400, 'InvalidParameter.TagValue');
      await refused('TagResources', { ...base, 'Tag.21.Key': 'k' }, 400, 'InvalidParameter.TagCount');
      assert.deepEqual(await tokenTags(code.id), [], 'no refused call tagged anything');
      // The boundaries themselves are accepted: a 64-character key and value (code points: CJK counts one), an empty value.
      const key64 = '键'.repeat(64);
      await ok('TagResources', {
        ...base,
        ...tagParams([
          [key64, 'v'.repeat(64)],
          ['empty', ''],
        ]),
      });
      assert.deepEqual(await tokenTags(code.id), [
        { Key: 'empty', Value: '' },
        { Key: key64, Value: 'v'.repeat(64) },
      ]);
    });

    it('more than 20 tags on one resource, in one call or over several, is InvalidParameter.TagCount and changes nothing', async () => {
      const code = await newCode();
      const other = await newCode();
      const twenty = Array.from({ length: 20 }, (_, i): [string, string] => [`k${i}`, `v${i}`]);
      const twentyOne: Array<[string, string]> = [...twenty, ['k20', 'v20']];
      await refused(
        'TagResources',
        { ResourceType: 'accesstoken', ...idParams([code.id]), ...tagParams(twentyOne) },
        400,
        'InvalidParameter.TagCount',
      );
      await ok('TagResources', { ResourceType: 'accesstoken', ...idParams([code.id]), ...tagParams(twenty.slice(0, 15)) });
      const body = await refused(
        'TagResources',
        { ResourceType: 'accesstoken', ...idParams([other.id, code.id]), ...tagParams([...twenty.slice(15, 20), ['extra', '']]) },
        400,
        'InvalidParameter.TagCount',
      );
      assert.match(body.Message, new RegExp(code.id));
      assert.equal((await tokenTags(code.id)).length, 15);
      assert.deepEqual(await tokenTags(other.id), [], 'the other resource of the refused call is unchanged');
      // Re-tagging existing keys does not count them twice: 15 kept keys + 5 new = 20.
      await ok('TagResources', { ResourceType: 'accesstoken', ...idParams([code.id]), ...tagParams(twenty) });
      assert.equal((await tokenTags(code.id)).length, 20);
    });

    it('an unknown resource id is 404 InvalidSourceId.NotFound / InvalidAccessTokenId.NotFound, and nothing changes', async () => {
      const code = await newCode();
      const src = await importWith(code, `m-unknown-${kind}`);
      await refused(
        'TagResources',
        { ResourceType: 'accesstoken', ...idParams([code.id, 'at-nosuchcode0000000000']), ...tagParams([['k', 'v']]) },
        404,
        'InvalidAccessTokenId.NotFound',
      );
      await refused(
        'TagResources',
        { ResourceType: 'sourceserver', ...idParams([src.SourceId, 's-nosuchsource000000000']), ...tagParams([['k', 'v']]) },
        404,
        'InvalidSourceId.NotFound',
      );
      // A code id named as a source is unknown as a source.
      await refused(
        'TagResources',
        { ResourceType: 'sourceserver', ...idParams([code.id]), ...tagParams([['k', 'v']]) },
        404,
        'InvalidSourceId.NotFound',
      );
      assert.deepEqual(await tokenTags(code.id), []);
      assert.deepEqual(await sourceTags(src.SourceId), []);
      await ok('TagResources', { ResourceType: 'sourceserver', ...idParams([src.SourceId]), ...tagParams([['k', 'v']]) });
      await refused(
        'UntagResources',
        { ResourceType: 'sourceserver', ...idParams([src.SourceId, 's-nosuchsource000000000']), All: 'true' },
        404,
        'InvalidSourceId.NotFound',
      );
      await refused(
        'UntagResources',
        { ResourceType: 'accesstoken', ...idParams(['at-nosuchcode0000000000']), 'TagKey.1': 'k' },
        404,
        'InvalidAccessTokenId.NotFound',
      );
      assert.deepEqual(await sourceTags(src.SourceId), [{ Key: 'k', Value: 'v' }]);
    });

    it('UntagResources validates its parameters; neither TagKey.N nor All=true is MissingTagKey', async () => {
      const code = await newCode();
      const base = { ResourceType: 'accesstoken', ...idParams([code.id]) };
      await refused('UntagResources', { ...base }, 400, 'MissingTagKey');
      await refused('UntagResources', { ...base, All: 'false' }, 400, 'MissingTagKey');
      await refused('UntagResources', { ...base, All: 'yes' }, 400, 'InvalidParameter.All');
      await refused('UntagResources', { ResourceType: 'accesstoken', All: 'true' }, 400, 'MissingResourceId');
      await refused('UntagResources', { ...idParams([code.id]), All: 'true' }, 400, 'MissingResourceType');
      const keys = Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`TagKey.${i + 1}`, `k${i}`]));
      await refused('UntagResources', { ...base, ...keys }, 400, 'InvalidParameter.TagKey');
    });

    it("CreateAccessToken takes Tag.N; a source's first import copies them, a re-import does not; later changes are independent", async () => {
      const code = await newCode(
        tagParams([
          ['env', 'prod'],
          ['wave', '1'],
        ]),
      );
      assert.deepEqual(await tokenTags(code.id), [
        { Key: 'env', Value: 'prod' },
        { Key: 'wave', Value: '1' },
      ]);
      await refused('CreateAccessToken', tagParams([['acs:x', 'v']]), 400, 'InvalidParameter.TagKey');
      const machine = `m-inherit-${kind}`;
      const first = await importWith(code, machine);
      assert.deepEqual(await sourceTags(first.SourceId), [
        { Key: 'env', Value: 'prod' },
        { Key: 'wave', Value: '1' },
      ]);
      // Changes on either side stay on that side; a re-import with the code copies nothing again.
      await ok('TagResources', {
        ResourceType: 'accesstoken',
        ...idParams([code.id]),
        ...tagParams([
          ['wave', '2'],
          ['new', 'x'],
        ]),
      });
      await ok('UntagResources', { ResourceType: 'sourceserver', ...idParams([first.SourceId]), 'TagKey.1': 'env' });
      const nonce = randomUUID();
      const again = await callV1(
        s.url,
        code,
        'ImportSourceServer',
        { MachineId: machine, SourceKeyId: first.SourceKeyId, SourceProof: sourceProof(first.SourceKeySecret, machine, nonce) },
        { nonce },
      );
      assert.equal(again.status, 200, again.text);
      assert.equal(again.body.SourceId, first.SourceId);
      assert.deepEqual(await sourceTags(first.SourceId), [{ Key: 'wave', Value: '1' }]);
    });

    it('a ClientToken replay needs the same tags and RequireApproval, and tags the code only once', async () => {
      const token = `ct-tags-${kind}`;
      const params = { ClientToken: token, ...tagParams([['env', 'prod']]) };
      const first = await ok('CreateAccessToken', params);
      const replay = await ok('CreateAccessToken', params);
      assert.equal(replay.AccessTokenId, first.AccessTokenId);
      assert.equal(replay.AccessTokenCode, '');
      assert.deepEqual(await tokenTags(first.AccessTokenId), [{ Key: 'env', Value: 'prod' }]);
      await refused('CreateAccessToken', { ClientToken: token, ...tagParams([['env', 'dev']]) }, 409, 'IdempotentParameterMismatch');
      await refused('CreateAccessToken', { ...params, RequireApproval: 'true' }, 409, 'IdempotentParameterMismatch');
    });

    it('Tag.N filters on both lists: every tag must match; a key without Value matches any value', async () => {
      const p = `f${kind}`;
      const c1 = await newCode(
        tagParams([
          [`${p}env`, 'prod'],
          [`${p}team`, 'db'],
        ]),
      );
      const c2 = await newCode(tagParams([[`${p}env`, 'prod']]));
      const c3 = await newCode(tagParams([[`${p}env`, 'dev']]));
      const codes = async (tags: Array<[string, string | undefined]>) =>
        (await ok('ListAccessTokens', tagParams(tags))).AccessTokens.AccessToken.map((t: any) => t.AccessTokenId);
      assert.deepEqual(await codes([[`${p}env`, 'prod']]), [c2.id, c1.id]);
      assert.deepEqual(await codes([[`${p}env`, undefined]]), [c3.id, c2.id, c1.id]);
      assert.deepEqual(
        await codes([
          [`${p}env`, 'prod'],
          [`${p}team`, 'db'],
        ]),
        [c1.id],
      );
      assert.deepEqual(
        await codes([
          [`${p}env`, 'dev'],
          [`${p}team`, undefined],
        ]),
        [],
      );
      assert.equal((await ok('ListAccessTokens', tagParams([[`${p}env`, 'prod']]))).TotalCount, 2);
      const s1 = await importWith(c1, `m-f1-${kind}`);
      const s3 = await importWith(c3, `m-f3-${kind}`);
      const sources = async (tags: Array<[string, string | undefined]>, extra: Record<string, string> = {}) =>
        (await ok('DescribeSourceServers', { ...tagParams(tags), ...extra })).SourceServers.SourceServer.map((x: any) => x.SourceId);
      assert.deepEqual(await sources([[`${p}env`, undefined]]), [s3.SourceId, s1.SourceId]);
      assert.deepEqual(await sources([[`${p}env`, 'prod']]), [s1.SourceId]);
      assert.deepEqual(
        await sources([
          [`${p}env`, 'prod'],
          [`${p}team`, 'web'],
        ]),
        [],
      );
      assert.deepEqual(await sources([[`${p}env`, undefined]], { AccessTokenId: c3.id }), [s3.SourceId]);
      await refused('DescribeSourceServers', tagParams([['https://x', 'v']]), 400, 'InvalidParameter.TagKey');
    });

    it('ListTagResources: one row per (resource, tag), SMC resource types, filters, 50 rows a page with NextToken', async () => {
      const p = `l${kind}`;
      const tagged: string[] = [];
      for (let i = 0; i < 4; i++) {
        const code = await newCode(tagParams(Array.from({ length: 15 }, (_, j): [string, string] => [`${p}${String(j).padStart(2, '0')}`, `v${j}`])));
        tagged.push(code.id);
      }
      const filter = tagParams([[`${p}00`, 'v0']]);
      const first = await ok('ListTagResources', { ResourceType: 'accesstoken', ...filter });
      const rows1 = first.TagResources.TagResource;
      assert.equal(rows1.length, 50);
      assert.notEqual(first.NextToken, '');
      assert.deepEqual(Object.keys(rows1[0]).sort(), ['ResourceId', 'ResourceType', 'TagKey', 'TagValue']);
      assert.ok(rows1.every((r: any) => r.ResourceType === 'ALIYUN::SMC::ACCESSTOKEN'));
      const second = await ok('ListTagResources', { ResourceType: 'accesstoken', ...filter, NextToken: first.NextToken });
      const rows2 = second.TagResources.TagResource;
      assert.equal(rows2.length, 10);
      assert.equal(second.NextToken, '');
      const all = [...rows1, ...rows2];
      const sorted = [...tagged].sort();
      assert.deepEqual(
        all.map((r: any) => `${r.ResourceId} ${r.TagKey}`),
        sorted.flatMap((id) => Array.from({ length: 15 }, (_, j) => `${id} ${p}${String(j).padStart(2, '0')}`)),
      );
      const byId = await ok('ListTagResources', { ResourceType: 'accesstoken', ...idParams([sorted[1]!, 'at-nosuchcode0000000000']) });
      assert.equal(byId.TagResources.TagResource.length, 15);
      assert.equal(byId.NextToken, '');
      const both = await ok('ListTagResources', { ResourceType: 'accesstoken', ...idParams([sorted[1]!]), ...tagParams([[`${p}03`, 'other']]) });
      assert.deepEqual(both.TagResources.TagResource, []);

      const code = await newCode(tagParams([[`${p}src`, 'yes']]));
      const imported = await importWith(code, `m-list-${kind}`);
      const sources = await ok('ListTagResources', { ResourceType: 'sourceserver', ...tagParams([[`${p}src`, undefined]]) });
      assert.deepEqual(sources.TagResources.TagResource, [
        { ResourceId: imported.SourceId, ResourceType: 'ALIYUN::SMC::SOURCESERVER', TagKey: `${p}src`, TagValue: 'yes' },
      ]);
      await refused('ListTagResources', {}, 400, 'MissingResourceType');
      await refused('ListTagResources', { ResourceType: 'accesstoken', NextToken: 'not-a-token' }, 400, 'InvalidParameter.NextToken');
    });

    it('in XML, tags follow the RPC list convention on both lists and in ListTagResources', async () => {
      const code = await newCode(tagParams([['xml', 'yes']]));
      const src = await importWith(code, `m-xml-${kind}`);
      const xml = async (action: string, params: Record<string, string>) => {
        const r = await callV1(s.url, s.root, action, params, { format: 'XML' });
        assert.equal(r.status, 200, r.text);
        return r.text;
      };
      assert.match(
        await xml('DescribeSourceServers', { 'SourceId.1': src.SourceId }),
        /<SourceServer>[\s\S]*<Tags><Tag><Key>xml<\/Key><Value>yes<\/Value><\/Tag><\/Tags>[\s\S]*<\/SourceServer>/,
      );
      assert.match(await xml('ListAccessTokens', { 'AccessTokenId.1': code.id }), /<Tags><Tag><Key>xml<\/Key><Value>yes<\/Value><\/Tag><\/Tags>/);
      assert.match(
        await xml('ListTagResources', { ResourceType: 'accesstoken', ...idParams([code.id]) }),
        new RegExp(
          `^(<\\?xml[^>]*>)?<ListTagResourcesResponse>.*<TagResources><TagResource><ResourceId>${code.id}</ResourceId><ResourceType>ALIYUN::SMC::ACCESSTOKEN</ResourceType><TagKey>xml</TagKey><TagValue>yes</TagValue></TagResource></TagResources>`,
        ),
      );
    });

    it('deleting a code or a source deletes its tags', async () => {
      const code = await newCode(tagParams([['gone', 'soon']]));
      const src = await importWith(code, `m-delete-${kind}`);
      await ok('DeleteSourceServer', { SourceId: src.SourceId });
      await ok('DeleteAccessToken', { AccessTokenId: code.id });
      for (const [type, id] of [
        ['accesstoken', code.id],
        ['sourceserver', src.SourceId],
      ] as const) {
        assert.deepEqual((await ok('ListTagResources', { ResourceType: type, ...idParams([id]) })).TagResources.TagResource, []);
      }
    });

    it('@alicloud/pop-core tags a source and lists it with TagResources and ListTagResources', async () => {
      const code = await newCode();
      const src = await importWith(code, `m-popcore-${kind}`);
      const client = new PopCore({ accessKeyId: s.root.id, accessKeySecret: s.root.secret, endpoint: s.url, apiVersion: '2019-06-01' });
      const tagged: any = await client.request(
        'TagResources',
        { ResourceType: 'sourceserver', 'ResourceId.1': src.SourceId, 'Tag.1.Key': 'owner', 'Tag.1.Value': 'pop-core' },
        { method: 'POST' },
      );
      assert.match(tagged.RequestId, REQUEST_ID);
      const listed: any = await client.request(
        'ListTagResources',
        { ResourceType: 'sourceserver', 'ResourceId.1': src.SourceId },
        { method: 'POST' },
      );
      assert.equal(listed.NextToken, '');
      assert.deepEqual(JSON.parse(JSON.stringify(listed.TagResources.TagResource)), [
        { ResourceId: src.SourceId, ResourceType: 'ALIYUN::SMC::SOURCESERVER', TagKey: 'owner', TagValue: 'pop-core' },
      ]);
      await assert.rejects(
        client.request('TagResources', { ResourceType: 'sourceserver', 'ResourceId.1': src.SourceId, 'Tag.1.Key': 'acs:x' }, { method: 'POST' }),
        (err: any) => err.code === 'InvalidParameter.TagKey',
      );
    });
  });
}
