import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { SMCD_BIN } from './helpers/process-server.ts';
import { startTestServer, type TestServer, tempDir, testClock } from './helpers/server.ts';
import { type ApiResponse, type Creds, callV1, REQUEST_ID } from './helpers/sign.ts';
import { openTestDatabase, STORE_KINDS, storeSkipReason } from './helpers/stores.ts';

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
      s = await startTestServer({ dir, database: db.url, clock, heartbeatRateSeconds: 10, sweepIntervalMs: 20, keepDir: true });
      secrets.push(s.root.secret);
    });
    after(async () => {
      await s?.close();
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
