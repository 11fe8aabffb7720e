import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { SMCD_BIN } from './helpers/process-server.ts';
import { startTestServer, type TestServer, tempDir, testClock } from './helpers/server.ts';
import { type ApiResponse, type Creds, callV1, REQUEST_ID } from './helpers/sign.ts';
import { openTestDatabase, STORE_KINDS, storeSkipReason } from './helpers/stores.ts';
import { sleep, startReceiver } from './helpers/webhook-receiver.ts';

const run = promisify(execFile);
const MINUTE = 60_000;

interface Event {
  EventId: string;
  EventTime: string;
  EventType: string;
  ResourceType: string;
  ResourceId: string;
  ActorKeyId: string;
  ClientIp: string;
  RequestId: string;
  Detail: string;
}

for (const kind of STORE_KINDS) {
  describe(`audit events record every change in its transaction (${kind})`, { skip: await storeSkipReason(kind) }, () => {
    let s: TestServer;
    let db: { url: string; drop(): Promise<void> };
    let dir: string;
    let receiver: Awaited<ReturnType<typeof startReceiver>>;
    const clock = testClock(Date.UTC(2032, 5, 1, 12));
    const ts = (ms = clock()) => `${new Date(ms).toISOString().slice(0, 19)}Z`;
    /** Every secret this test saw: none may appear in an event. */
    const secrets: string[] = [];
    const call = (creds: Creds, action: string, params: Record<string, string> = {}) => callV1(s.url, creds, action, params, { timestamp: ts() });
    const ok = async (creds: Creds, action: string, params: Record<string, string> = {}): Promise<ApiResponse> => {
      const r = await call(creds, action, params);
      assert.equal(r.status, 200, `${action}: ${r.text}`);
      return r;
    };
    const events = async (params: Record<string, string> = {}): Promise<Event[]> =>
      (await ok(s.root, 'DescribeAuditEvents', { PageSize: '100', ...params })).body.Events.Event;
    const only = async (type: string, resourceId: string): Promise<Event> => {
      const found = await events({ 'EventType.1': type, ResourceId: resourceId });
      assert.equal(found.length, 1, `one ${type} for ${resourceId}: ${JSON.stringify(found)}`);
      return found[0]!;
    };
    /** Polls (the sweep and the heartbeat flush run on their own timers) until `type` is recorded for the resource. */
    const eventually = async (type: string, resourceId: string, count = 1): Promise<Event[]> => {
      for (let i = 0; i < 400; i++) {
        const found = await events({ 'EventType.1': type, ResourceId: resourceId });
        if (found.length >= count) return found;
        await new Promise((r) => setTimeout(r, 25));
      }
      assert.fail(`no ${type} event for ${resourceId}`);
    };
    const detail = (e: Event) => JSON.parse(e.Detail);
    const cli = async (...args: string[]) =>
      (await run(process.execPath, [SMCD_BIN, 'keys', ...args, '--data-dir', dir, '--database', db.url, '--output', 'json'])).stdout;

    let code: Creds;
    let source1 = '';
    let sourceKey1: Creds;

    before(async () => {
      dir = tempDir();
      db = await openTestDatabase(kind, dir);
      receiver = await startReceiver(() => 204);
      s = await startTestServer({ dir, database: db.url, clock, heartbeatRateSeconds: 10, sweepIntervalMs: 20, keepDir: true });
      secrets.push(s.root.secret);
    });
    after(async () => {
      await s?.close();
      await receiver?.close();
      await db?.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('CreateAccessToken: every field of the event, the code never', async () => {
      const r = await ok(s.root, 'CreateAccessToken', { Name: 'audit', Count: '2', TimeToLiveInDays: '5', Description: 'two machines' });
      code = { id: r.body.AccessTokenId, secret: r.body.AccessTokenCode };
      secrets.push(code.secret);
      const e = await only('AccessToken.Create', code.id);
      assert.match(e.EventId, /^ev-[a-z0-9]{20}$/);
      assert.equal(e.EventTime, ts());
      assert.equal(e.ResourceType, 'accesstoken');
      assert.equal(e.ActorKeyId, s.root.id);
      assert.equal(e.ClientIp, '127.0.0.1');
      assert.equal(e.RequestId, r.body.RequestId);
      assert.match(e.RequestId, REQUEST_ID);
      assert.deepEqual(detail(e), {
        Name: 'audit',
        Description: 'two machines',
        Count: 2,
        TimeToLiveInDays: 5,
        ExpirationTime: ts(clock() + 5 * 86_400_000),
        IpAddressRange: '',
      });
    });

    it('ImportSourceServer: Import per machine, Exhausted with the last use, ImportRefused with the code it named', async () => {
      const first = await ok(code, 'ImportSourceServer', { MachineId: 'audit-m1', Hostname: 'one' });
      source1 = first.body.SourceId;
      sourceKey1 = { id: first.body.SourceKeyId, secret: first.body.SourceKeySecret };
      secrets.push(sourceKey1.secret);
      const imported = await only('SourceServer.Import', source1);
      assert.equal(imported.ResourceType, 'sourceserver');
      assert.equal(imported.ActorKeyId, code.id);
      assert.equal(imported.ClientIp, '127.0.0.1');
      assert.equal(imported.RequestId, first.body.RequestId);
      assert.deepEqual(detail(imported), { AccessTokenId: code.id, MachineId: 'audit-m1', Created: true, UsedSlot: true });
      assert.equal((await events({ 'EventType.1': 'AccessToken.Exhausted' })).length, 0, 'one use of two left: not exhausted');

      const second = await ok(code, 'ImportSourceServer', { MachineId: 'audit-m2' });
      secrets.push(second.body.SourceKeySecret);
      const exhausted = await only('AccessToken.Exhausted', code.id);
      assert.equal(exhausted.RequestId, second.body.RequestId);
      assert.deepEqual(detail(exhausted), { SourceId: second.body.SourceId });

      const refused = await call(code, 'ImportSourceServer', { MachineId: 'audit-m3' });
      assert.equal(refused.body.Code, 'AccessToken.CountExceeded');
      const e = await only('SourceServer.ImportRefused', code.id);
      assert.equal(e.ResourceType, 'accesstoken');
      assert.equal(e.ActorKeyId, code.id);
      assert.equal(e.RequestId, refused.body.RequestId);
      assert.deepEqual(detail(e), { MachineId: 'audit-m3', Code: 'AccessToken.CountExceeded' });
    });

    it('DisableAccessToken and DeleteAccessToken; an import with the disabled code is recorded refused', async () => {
      const created = await ok(s.root, 'CreateAccessToken', { IpAddressRange: '10.0.0.0/8' });
      const other = { id: created.body.AccessTokenId, secret: created.body.AccessTokenCode };
      secrets.push(other.secret);
      const fromHere = await call(other, 'ImportSourceServer', { MachineId: 'audit-far' });
      assert.equal(fromHere.body.Code, 'AccessToken.IpNotAllowed');
      assert.deepEqual(detail(await only('SourceServer.ImportRefused', other.id)), { MachineId: 'audit-far', Code: 'AccessToken.IpNotAllowed' });

      const disabled = await ok(s.root, 'DisableAccessToken', { AccessTokenId: other.id });
      const e = await only('AccessToken.Disable', other.id);
      assert.equal(e.RequestId, disabled.body.RequestId);
      assert.deepEqual(detail(e), { Disabled: true });
      const refused = await call(other, 'ImportSourceServer', { MachineId: 'audit-late' });
      assert.equal(refused.body.Code, 'AccessToken.Disabled');
      const refusals = await events({ 'EventType.1': 'SourceServer.ImportRefused', ResourceId: other.id });
      assert.deepEqual(detail(refusals[0]!), { MachineId: 'audit-late', Code: 'AccessToken.Disabled' }, 'newest first');

      await ok(s.root, 'DeleteAccessToken', { AccessTokenId: other.id });
      assert.equal((await only('AccessToken.Delete', other.id)).ActorKeyId, s.root.id);
      const missing = await call(s.root, 'DisableAccessToken', { AccessTokenId: other.id });
      assert.equal(missing.body.Code, 'InvalidAccessTokenId.NotFound');
      assert.equal((await events({ 'EventType.1': 'AccessToken.Disable', ResourceId: other.id })).length, 1, 'a refused change records nothing');
    });

    it('ModifySourceServerAttribute records the changed fields', async () => {
      await ok(s.root, 'ModifySourceServerAttribute', { SourceId: source1, Name: 'renamed' });
      assert.deepEqual(detail(await only('SourceServer.Modify', source1)), { Name: 'renamed' });
    });

    it('heartbeats record nothing; Offline once when the sweep finds a silent source, Online at its next beat', async () => {
      const before = (await events()).length;
      await ok(sourceKey1, 'ReportSourceServerHeartbeat', { SourceId: source1 });
      await s.server.services.heartbeats.flush();
      await ok(sourceKey1, 'ReportSourceServerHeartbeat', { SourceId: source1 });
      await s.server.services.heartbeats.flush();
      assert.equal((await events()).length, before, 'no event per heartbeat');

      clock.advance(10 * MINUTE);
      const offline = (await eventually('SourceServer.Offline', source1))[0]!;
      assert.equal(offline.ResourceType, 'sourceserver');
      assert.equal(offline.ActorKeyId, '');
      assert.equal(offline.EventTime, ts());
      assert.ok(detail(offline).LastHeartbeatTime, 'the last heartbeat time is in the detail');
      await s.server.sweep();
      await s.server.sweep();
      assert.equal((await events({ 'EventType.1': 'SourceServer.Offline', ResourceId: source1 })).length, 1, 'recorded once');

      const beat = await ok(sourceKey1, 'ReportSourceServerHeartbeat', { SourceId: source1 });
      await s.server.services.heartbeats.flush();
      const online = await only('SourceServer.Online', source1);
      assert.equal(online.ActorKeyId, sourceKey1.id);
      assert.equal(online.ClientIp, '127.0.0.1');
      assert.equal(online.RequestId, beat.body.RequestId);
      await ok(sourceKey1, 'ReportSourceServerHeartbeat', { SourceId: source1 });
      await s.server.services.heartbeats.flush();
      await s.server.sweep();
      assert.equal((await events({ 'EventType.1': 'SourceServer.Online', ResourceId: source1 })).length, 1, 'one Online per transition');
      assert.equal((await events({ 'EventType.1': 'SourceServer.Offline', ResourceId: source1 })).length, 1, 'beating again: not offline');
    });

    it('DeleteSourceServer', async () => {
      const r = await ok(s.root, 'DeleteSourceServer', { SourceId: source1 });
      assert.equal((await only('SourceServer.Delete', source1)).RequestId, r.body.RequestId);
    });

    it('TagResources, UntagResources, ApproveSourceServers, RejectSourceServers: one event per resource changed, delivered to webhooks', async () => {
      const types = ['AccessToken.Tag', 'SourceServer.Tag', 'SourceServer.Approve', 'SourceServer.Reject'];
      const hook = await ok(s.root, 'CreateWebhook', {
        Url: `${receiver.url}/tags`,
        ...Object.fromEntries(types.map((t, i) => [`EventType.${i + 1}`, t])),
      });
      const strict = await ok(s.root, 'CreateAccessToken', { Count: '3', RequireApproval: 'true' });
      const strictCode = { id: strict.body.AccessTokenId, secret: strict.body.AccessTokenCode };
      secrets.push(strictCode.secret);
      const pending: string[] = [];
      for (const machine of ['audit-p1', 'audit-p2', 'audit-p3']) {
        const r = await ok(strictCode, 'ImportSourceServer', { MachineId: machine });
        secrets.push(r.body.SourceKeySecret);
        pending.push(r.body.SourceId);
      }
      const [p1, p2, p3] = pending as [string, string, string];

      // Tags on a code and on two sources: one event per resource, with the keys and values set.
      const tagCode = await ok(s.root, 'TagResources', {
        ResourceType: 'accesstoken',
        'ResourceId.1': strictCode.id,
        'Tag.1.Key': 'env',
        'Tag.1.Value': 'prod',
        'Tag.2.Key': 'team',
        'Tag.2.Value': 'db',
      });
      const codeTagged = await only('AccessToken.Tag', strictCode.id);
      assert.equal(codeTagged.ResourceType, 'accesstoken');
      assert.equal(codeTagged.ActorKeyId, s.root.id);
      assert.equal(codeTagged.ClientIp, '127.0.0.1');
      assert.equal(codeTagged.RequestId, tagCode.body.RequestId);
      assert.deepEqual(detail(codeTagged), {
        Set: [
          { Key: 'env', Value: 'prod' },
          { Key: 'team', Value: 'db' },
        ],
      });
      const tagSources = await ok(s.root, 'TagResources', {
        ResourceType: 'sourceserver',
        'ResourceId.1': p1,
        'ResourceId.2': p2,
        'Tag.1.Key': 'rack',
        'Tag.1.Value': 'r7',
      });
      for (const id of [p1, p2]) {
        const e = await only('SourceServer.Tag', id);
        assert.equal(e.ResourceType, 'sourceserver');
        assert.equal(e.RequestId, tagSources.body.RequestId);
        assert.deepEqual(detail(e), { Set: [{ Key: 'rack', Value: 'r7' }] });
      }
      assert.equal((await events({ 'EventType.1': 'SourceServer.Tag', ResourceId: p3 })).length, 0, 'an untouched source has no event');

      // Untag: the keys each resource lost; a resource that lost none has no event.
      const untag = await ok(s.root, 'UntagResources', { ResourceType: 'sourceserver', 'ResourceId.1': p1, 'ResourceId.2': p3, 'TagKey.1': 'rack' });
      const p1Tags = await events({ 'EventType.1': 'SourceServer.Tag', ResourceId: p1 });
      assert.equal(p1Tags.length, 2);
      assert.equal(p1Tags[0]!.RequestId, untag.body.RequestId, 'newest first');
      assert.deepEqual(detail(p1Tags[0]!), { Removed: ['rack'] });
      assert.equal((await events({ 'EventType.1': 'SourceServer.Tag', ResourceId: p3 })).length, 0, 'nothing removed from p3: no event');
      await ok(s.root, 'UntagResources', { ResourceType: 'accesstoken', 'ResourceId.1': strictCode.id, All: 'true' });
      assert.deepEqual(detail((await events({ 'EventType.1': 'AccessToken.Tag', ResourceId: strictCode.id }))[0]!), { Removed: ['env', 'team'] });

      // A refused batch (an unknown id among them) changes nothing and records nothing.
      const before = (await events()).length;
      const refused = await call(s.root, 'TagResources', {
        ResourceType: 'sourceserver',
        'ResourceId.1': p3,
        'ResourceId.2': 's-nothere',
        'Tag.1.Key': 'k',
        'Tag.1.Value': 'v',
      });
      assert.equal(refused.body.Code, 'InvalidSourceId.NotFound');
      assert.equal(
        (await call(s.root, 'ApproveSourceServers', { 'SourceId.1': p1, 'SourceId.2': 's-nothere' })).body.Code,
        'InvalidSourceId.NotFound',
      );
      assert.equal(
        (await call(s.root, 'RejectSourceServers', { 'SourceId.1': p1, 'SourceId.2': 's-nothere' })).body.Code,
        'InvalidSourceId.NotFound',
      );
      assert.equal((await events()).length, before, 'refused batches record nothing');

      // Approve: one event per source that became Approved; approving it again changes nothing.
      const approve = await ok(s.root, 'ApproveSourceServers', { 'SourceId.1': p1, 'SourceId.2': p2 });
      for (const id of [p1, p2]) {
        const e = await only('SourceServer.Approve', id);
        assert.equal(e.ResourceType, 'sourceserver');
        assert.equal(e.ActorKeyId, s.root.id);
        assert.equal(e.ClientIp, '127.0.0.1');
        assert.equal(e.RequestId, approve.body.RequestId);
        assert.deepEqual(detail(e), { ApprovalStatus: 'Approved' });
      }
      await ok(s.root, 'ApproveSourceServers', { 'SourceId.1': p1 });
      assert.equal((await events({ 'EventType.1': 'SourceServer.Approve', ResourceId: p1 })).length, 1, 'already Approved: no event');

      // Reject: one event per source deleted, with the status it had.
      const reject = await ok(s.root, 'RejectSourceServers', { 'SourceId.1': p2, 'SourceId.2': p3 });
      for (const [id, status] of [
        [p2, 'Approved'],
        [p3, 'Pending'],
      ] as const) {
        const e = await only('SourceServer.Reject', id);
        assert.equal(e.ResourceType, 'sourceserver');
        assert.equal(e.ActorKeyId, s.root.id);
        assert.equal(e.RequestId, reject.body.RequestId);
        assert.deepEqual(detail(e), { ApprovalStatus: status });
      }

      // The webhook subscribed to these types was queued each one with its change, and receives them all in order.
      const recorded = (
        await events({ 'EventType.1': types[0]!, 'EventType.2': types[1]!, 'EventType.3': types[2]!, 'EventType.4': types[3]! })
      ).reverse();
      assert.equal(recorded.length, 9);
      const queued = await ok(s.root, 'DescribeWebhookDeliveries', { WebhookId: hook.body.WebhookId, PageSize: '50' });
      assert.equal(queued.body.TotalCount, recorded.length);
      for (let i = 0; i < 400 && receiver.received.length < recorded.length; i++) await sleep(25);
      assert.deepEqual(
        receiver.received.map((r) => r.event.EventId),
        recorded.map((e) => e.EventId),
      );
      assert.deepEqual(
        receiver.received.map((r) => r.event.EventType),
        recorded.map((e) => e.EventType),
      );
    });

    it('smcd keys create, disable, enable, delete record AccessKey events with the actor "cli"', async () => {
      const created = JSON.parse(await cli('create', '--actions', 'ListAccessTokens', '--description', 'audited'));
      secrets.push(created.AccessKeySecret);
      const e = await only('AccessKey.Create', created.AccessKeyId);
      assert.equal(e.ResourceType, 'accesskey');
      assert.equal(e.ActorKeyId, 'cli');
      assert.match(e.RequestId, REQUEST_ID);
      assert.deepEqual(detail(e), { Actions: 'ListAccessTokens', Description: 'audited' });
      await cli('disable', created.AccessKeyId);
      await cli('enable', created.AccessKeyId);
      await cli('delete', created.AccessKeyId);
      assert.deepEqual(detail(await only('AccessKey.Disable', created.AccessKeyId)), { Enabled: false });
      assert.deepEqual(detail(await only('AccessKey.Enable', created.AccessKeyId)), { Enabled: true });
      await only('AccessKey.Delete', created.AccessKeyId);
    });

    it('no event carries a secret: not a code, a source key secret or an access key secret', async () => {
      const all = await ok(s.root, 'DescribeAuditEvents', { PageSize: '100' });
      assert.ok(all.body.Events.Event.length >= 15);
      assert.ok(secrets.length >= 6);
      for (const secret of secrets) assert.ok(!all.text.includes(secret), 'a secret appears in the audit events');
    });

    it('filters: EventType.N, ResourceId, StartTime and EndTime', async () => {
      const two = await events({ 'EventType.1': 'AccessToken.Create', 'EventType.2': 'AccessToken.Delete' });
      assert.ok(two.length >= 3);
      assert.ok(two.every((e) => e.EventType === 'AccessToken.Create' || e.EventType === 'AccessToken.Delete'));
      const ofCode = await events({ ResourceId: code.id });
      assert.deepEqual(
        new Set(ofCode.map((e) => e.EventType)),
        new Set(['AccessToken.Create', 'AccessToken.Exhausted', 'SourceServer.ImportRefused']),
      );
      const all = await events();
      const start = all[all.length - 1]!.EventTime;
      const later = all.filter((e) => e.EventTime > start);
      assert.ok(later.length > 0 && later.length < all.length, 'the clock moved during the test');
      assert.deepEqual(await events({ StartTime: ts(Date.parse(start) + 1000) }), later);
      assert.deepEqual(
        await events({ EndTime: start }),
        all.filter((e) => e.EventTime <= start),
      );
      assert.deepEqual(await events({ StartTime: ts(clock() + MINUTE) }), []);
      assert.deepEqual(await events({ ResourceId: 'at-nothing' }), []);
    });

    it('paging: NextToken walks every event once, newest first; empty on the last page', async () => {
      const all = await events();
      const seen: Event[] = [];
      let token = '';
      for (let page = 0; page < 100; page++) {
        const r = await ok(s.root, 'DescribeAuditEvents', { PageSize: '4', ...(token ? { NextToken: token } : {}) });
        seen.push(...r.body.Events.Event);
        token = r.body.NextToken;
        assert.ok(r.body.Events.Event.length <= 4);
        if (!token) break;
      }
      assert.equal(token, '');
      assert.deepEqual(
        seen.map((e) => e.EventId),
        all.map((e) => e.EventId),
      );
      const exact = await ok(s.root, 'DescribeAuditEvents', { PageSize: String(all.length) });
      assert.equal(exact.body.NextToken, '', 'a page holding the last event has no next page');
      const defaulted = await ok(s.root, 'DescribeAuditEvents');
      assert.equal(defaulted.body.Events.Event.length, Math.min(50, all.length), 'PageSize defaults to 50');
    });

    it('validation: every parameter refuses what it does not accept', async () => {
      const cases: Array<[Record<string, string>, string]> = [
        [{ 'EventType.1': 'AccessToken.Explode' }, 'InvalidParameter.EventType'],
        [{ StartTime: '2032-06-01 12:00:00' }, 'InvalidParameter.StartTime'],
        [{ StartTime: '2032-02-30T00:00:00Z' }, 'InvalidParameter.StartTime'],
        [{ EndTime: 'yesterday' }, 'InvalidParameter.EndTime'],
        [{ StartTime: '2032-06-02T00:00:00Z', EndTime: '2032-06-01T00:00:00Z' }, 'InvalidParameter.EndTime'],
        [{ PageSize: '0' }, 'InvalidParameter.PageSize'],
        [{ PageSize: '101' }, 'InvalidParameter.PageSize'],
        [{ NextToken: 'abc' }, 'InvalidParameter.NextToken'],
      ];
      for (const [params, expected] of cases) {
        const r = await call(s.root, 'DescribeAuditEvents', params);
        assert.equal(r.status, 400, JSON.stringify(params));
        assert.equal(r.body.Code, expected, JSON.stringify(params));
        assert.match(r.body.RequestId, REQUEST_ID);
      }
      const asCode = await call(code, 'DescribeAuditEvents');
      assert.equal(asCode.body.Code, 'Forbidden.RAM', 'an activation code may not read the audit trail');
    });
  });
}
