import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer, tempDir } from './helpers/server.ts';
import { type Creds, callV1, REQUEST_ID } from './helpers/sign.ts';
import { openTestDatabase, STORE_KINDS, storeSkipReason } from './helpers/stores.ts';

const ids = (list: string[]) => Object.fromEntries(list.map((id, i) => [`SourceId.${i + 1}`, id]));

for (const kind of STORE_KINDS) {
  describe(`approval of sources imported with a RequireApproval code (${kind})`, { skip: await storeSkipReason(kind) }, () => {
    let s: TestServer;
    let dir: string;
    let db: { url: string; drop(): Promise<void> };
    let strict: Creds;
    let open: Creds;

    before(async () => {
      dir = tempDir('smcd-approval-');
      db = await openTestDatabase(kind, dir);
      s = await startTestServer({ dir, database: db.url });
      strict = await newCode({ RequireApproval: 'true' });
      open = await newCode();
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
      return r.body;
    }
    async function refused(action: string, params: Record<string, string>, status: number, code: string, creds: Creds = s.root) {
      const r = await call(action, params, creds);
      assert.equal(r.status, status, `${action} ${JSON.stringify(params)}: ${r.text}`);
      assert.equal(r.body.Code, code, r.text);
      assert.match(r.body.RequestId, REQUEST_ID);
    }
    async function newCode(params: Record<string, string> = {}): Promise<Creds> {
      const b = await ok('CreateAccessToken', params);
      return { id: b.AccessTokenId, secret: b.AccessTokenCode };
    }
    async function importWith(code: Creds, machineId: string) {
      const b = await ok('ImportSourceServer', { MachineId: machineId, Hostname: machineId }, code);
      return { sourceId: String(b.SourceId), key: { id: String(b.SourceKeyId), secret: String(b.SourceKeySecret) } };
    }
    const statusOf = async (sourceId: string) =>
      (await ok('DescribeSourceServers', ids([sourceId]))).SourceServers.SourceServer[0]?.ApprovalStatus as string | undefined;
    const heartbeat = (src: { sourceId: string; key: Creds }) => call('ReportSourceServerHeartbeat', { SourceId: src.sourceId }, src.key);

    it('RequireApproval is listed on codes as "true"/"false" (default "false") and takes only true or false', async () => {
      const listed = await ok('ListAccessTokens', { 'AccessTokenId.1': strict.id, 'AccessTokenId.2': open.id });
      const byId = Object.fromEntries(listed.AccessTokens.AccessToken.map((t: any) => [t.AccessTokenId, t.RequireApproval]));
      assert.deepEqual(byId, { [strict.id]: 'true', [open.id]: 'false' });
      const explicit = await newCode({ RequireApproval: 'false' });
      assert.equal((await ok('ListAccessTokens', { 'AccessTokenId.1': explicit.id })).AccessTokens.AccessToken[0].RequireApproval, 'false');
      await refused('CreateAccessToken', { RequireApproval: 'yes' }, 400, 'InvalidParameter.RequireApproval');
      await refused('CreateAccessToken', { RequireApproval: 'TRUE' }, 400, 'InvalidParameter.RequireApproval');
    });

    it('a source first imported with such a code is Pending and heartbeats; other sources are Approved; the list filters on it', async () => {
      const pending = await importWith(strict, `m-pending-${kind}`);
      const approved = await importWith(open, `m-approved-${kind}`);
      assert.equal(await statusOf(pending.sourceId), 'Pending');
      assert.equal(await statusOf(approved.sourceId), 'Approved');
      assert.equal((await heartbeat(pending)).status, 200);
      const both = ids([pending.sourceId, approved.sourceId]);
      const only = async (status: string) =>
        (await ok('DescribeSourceServers', { ...both, ApprovalStatus: status })).SourceServers.SourceServer.map((x: any) => x.SourceId);
      assert.deepEqual(await only('Pending'), [pending.sourceId]);
      assert.deepEqual(await only('Approved'), [approved.sourceId]);
      await refused('DescribeSourceServers', { ApprovalStatus: 'pending' }, 400, 'InvalidParameter.ApprovalStatus');
    });

    it('ApproveSourceServers: Pending becomes Approved; an unknown id among them is 404 and changes nothing', async () => {
      const a = await importWith(strict, `m-approve-a-${kind}`);
      const b = await importWith(strict, `m-approve-b-${kind}`);
      await refused('ApproveSourceServers', ids([a.sourceId, 's-nosuchsource000000000', b.sourceId]), 404, 'InvalidSourceId.NotFound');
      assert.equal(await statusOf(a.sourceId), 'Pending');
      assert.equal(await statusOf(b.sourceId), 'Pending');
      const r = await ok('ApproveSourceServers', ids([a.sourceId, b.sourceId]));
      assert.match(r.RequestId, REQUEST_ID);
      assert.equal(await statusOf(a.sourceId), 'Approved');
      assert.equal(await statusOf(b.sourceId), 'Approved');
      // Approving again is no change, not an error.
      await ok('ApproveSourceServers', ids([a.sourceId]));
      assert.equal((await heartbeat(a)).status, 200);
    });

    it('RejectSourceServers: deletes the sources and refuses their keys; an unknown id among them is 404 and changes nothing', async () => {
      const a = await importWith(strict, `m-reject-a-${kind}`);
      const b = await importWith(open, `m-reject-b-${kind}`);
      await refused('RejectSourceServers', ids([a.sourceId, b.sourceId, 's-nosuchsource000000000']), 404, 'InvalidSourceId.NotFound');
      assert.equal(await statusOf(a.sourceId), 'Pending');
      assert.equal((await heartbeat(b)).status, 200);
      await ok('RejectSourceServers', ids([a.sourceId, b.sourceId]));
      assert.equal((await ok('DescribeSourceServers', ids([a.sourceId, b.sourceId]))).TotalCount, 0);
      for (const src of [a, b]) {
        const beat = await heartbeat(src);
        assert.equal(beat.status, 404, beat.text);
        assert.equal(beat.body.Code, 'InvalidAccessKeyId.NotFound');
      }
      await refused('ApproveSourceServers', ids([a.sourceId]), 404, 'InvalidSourceId.NotFound');
    });

    it('Approve and Reject take SourceId.N, 1 to 50, and only from an access key', async () => {
      for (const action of ['ApproveSourceServers', 'RejectSourceServers']) {
        await refused(action, {}, 400, 'MissingSourceId');
        await refused(action, ids(Array.from({ length: 51 }, (_, i) => `s-${String(i).padStart(20, '0')}`)), 400, 'InvalidParameter.SourceId');
        const src = await importWith(strict, `m-perm-${action}-${kind}`);
        await refused(action, ids([src.sourceId]), 403, 'Forbidden.RAM', src.key);
        assert.equal(await statusOf(src.sourceId), 'Pending');
      }
    });
  });
}
