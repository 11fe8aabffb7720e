import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openStore } from '../src/store/open-store.ts';
import { startTestServer, type TestServer, tempDir, testClock } from './helpers/server.ts';
import { type Creds, callV1 } from './helpers/sign.ts';

describe('sources: heartbeats, states, DescribeSourceServers filters and paging, modify and delete', () => {
  let s: TestServer;
  const clock = testClock();
  const ts = () => `${new Date(clock()).toISOString().slice(0, 19)}Z`;
  let codeA: Creds;
  let codeB: Creds;
  const keys: Record<string, { sourceId: string; key: Creds }> = {};
  before(async () => {
    s = await startTestServer({ clock, heartbeatRateSeconds: 10 });
    const mk = async () => {
      const r = await callV1(s.url, s.root, 'CreateAccessToken', {}, { timestamp: ts() });
      return { id: r.body.AccessTokenId, secret: r.body.AccessTokenCode };
    };
    codeA = await mk();
    codeB = await mk();
    for (let i = 0; i < 12; i++) {
      const code = i < 8 ? codeA : codeB;
      const r = await callV1(s.url, code, 'ImportSourceServer', { MachineId: `m${i}`, Hostname: `host${i}` }, { timestamp: ts() });
      assert.equal(r.status, 200, r.text);
      keys[`m${i}`] = { sourceId: r.body.SourceId, key: { id: r.body.SourceKeyId, secret: r.body.SourceKeySecret } };
      clock.advance(1000);
    }
  });
  after(() => s.close());

  const describeSources = (params: Record<string, string>) => callV1(s.url, s.root, 'DescribeSourceServers', params, { timestamp: ts() });
  /** A heartbeat, then its batched write done at once (the server would do it within a few seconds). */
  const beat = async (m: string, params: Record<string, string> = {}) => {
    const r = await callV1(s.url, keys[m]!.key, 'ReportSourceServerHeartbeat', { SourceId: keys[m]!.sourceId, ...params }, { timestamp: ts() });
    await s.server.services.heartbeats.flush();
    return r;
  };

  it('default page size 10, newest first, integer fields as integers', async () => {
    const r = await describeSources({});
    assert.equal(r.body.TotalCount, 12);
    assert.equal(r.body.PageSize, 10);
    const items = r.body.SourceServers.SourceServer;
    assert.equal(items.length, 10);
    assert.equal(items[0].MachineId, 'm11');
    assert.equal(typeof items[0].HeartbeatRate, 'number');
    assert.equal(items[0].HeartbeatRate, 10);
    const page2 = await describeSources({ PageNumber: '2' });
    assert.equal(page2.body.SourceServers.SourceServer.length, 2);
  });

  it('filters: SourceId.N, Name, AccessTokenId; unknown ids match nothing', async () => {
    const byIds = await describeSources({ 'SourceId.1': keys.m1!.sourceId, 'SourceId.2': keys.m9!.sourceId, 'SourceId.3': 's-unknown' });
    assert.deepEqual(byIds.body.SourceServers.SourceServer.map((x: any) => x.MachineId).sort(), ['m1', 'm9']);
    assert.equal((await describeSources({ Name: 'host3' })).body.TotalCount, 1);
    assert.equal((await describeSources({ AccessTokenId: codeB.id })).body.TotalCount, 4);
    assert.equal((await describeSources({ 'SourceId.1': 's-nothing' })).body.TotalCount, 0);
  });

  it('a source heartbeats only for itself: another SourceId is Forbidden.RAM, a missing one NotFound', async () => {
    assert.equal((await beat('m0')).status, 200);
    assert.equal((await beat('m0')).body.HeartbeatRate, 10);
    const other = await callV1(s.url, keys.m0!.key, 'ReportSourceServerHeartbeat', { SourceId: keys.m1!.sourceId }, { timestamp: ts() });
    assert.equal(other.status, 403);
    assert.equal(other.body.Code, 'Forbidden.RAM');
    const missing = await callV1(s.url, keys.m0!.key, 'ReportSourceServerHeartbeat', { SourceId: 's-doesnotexist' }, { timestamp: ts() });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.Code, 'InvalidSourceId.NotFound');
    // A source key may call nothing else.
    const list = await callV1(s.url, keys.m0!.key, 'DescribeSourceServers', {}, { timestamp: ts() });
    assert.equal(list.body.Code, 'Forbidden.RAM');
  });

  it('Available while heartbeats arrive; Unavailable with SourceServer.Offline after 3 missed', async () => {
    clock.advance(25_000);
    assert.equal((await beat('m2', { SystemInfo: JSON.stringify({ load: 1 }), StatusInfo: 'ok' })).status, 200);
    clock.advance(10_000);
    // m2 beat 10 s ago: Available. The others last beat >= 35 s ago: more than 3 x 10 s.
    const r = await describeSources({ 'SourceId.1': keys.m2!.sourceId, 'SourceId.2': keys.m3!.sourceId });
    const byMachine = Object.fromEntries(r.body.SourceServers.SourceServer.map((x: any) => [x.MachineId, x]));
    assert.equal(byMachine.m2.State, 'Available');
    assert.equal(byMachine.m2.ErrorCode, '');
    assert.deepEqual(JSON.parse(byMachine.m2.SystemInfo), { load: 1 });
    assert.equal(byMachine.m3.State, 'Unavailable');
    assert.equal(byMachine.m3.ErrorCode, 'SourceServer.Offline');
    assert.equal((await describeSources({ State: 'Available' })).body.TotalCount, 1);
    assert.equal((await describeSources({ State: 'Unavailable' })).body.TotalCount, 11);
    assert.equal((await describeSources({ State: 'Sleeping' })).body.Code, 'InvalidParameter.State');
  });

  it('ModifySourceServerAttribute changes name and description with the naming rules', async () => {
    const id = keys.m4!.sourceId;
    assert.equal(
      (
        await callV1(
          s.url,
          s.root,
          'ModifySourceServerAttribute',
          { SourceId: id, Name: '数据库-01', Description: 'primary db' },
          { timestamp: ts() },
        )
      ).status,
      200,
    );
    const src = (await describeSources({ 'SourceId.1': id })).body.SourceServers.SourceServer[0];
    assert.equal(src.Name, '数据库-01');
    assert.equal(src.Description, 'primary db');
    const bad = await callV1(s.url, s.root, 'ModifySourceServerAttribute', { SourceId: id, Name: 'http://x' }, { timestamp: ts() });
    assert.equal(bad.body.Code, 'InvalidParameter.Name');
    const missing = await callV1(s.url, s.root, 'ModifySourceServerAttribute', { SourceId: 's-none', Name: 'abc' }, { timestamp: ts() });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.Code, 'InvalidSourceId.NotFound');
    assert.equal((await callV1(s.url, s.root, 'ModifySourceServerAttribute', {}, { timestamp: ts() })).body.Code, 'MissingSourceId');
  });

  it('DeleteSourceServer removes the source, frees nothing on its code, and its key stops working', async () => {
    const id = keys.m5!.sourceId;
    assert.equal((await callV1(s.url, s.root, 'DeleteSourceServer', { SourceId: id }, { timestamp: ts() })).status, 200);
    assert.equal((await describeSources({ 'SourceId.1': id })).body.TotalCount, 0);
    const token = (await callV1(s.url, s.root, 'ListAccessTokens', { 'AccessTokenId.1': codeA.id }, { timestamp: ts() })).body.AccessTokens
      .AccessToken[0];
    assert.equal(token.RegisteredCount, '8');
    assert.equal((await beat('m5')).body.Code, 'InvalidAccessKeyId.NotFound');
    const again = await callV1(s.url, s.root, 'DeleteSourceServer', { SourceId: id }, { timestamp: ts() });
    assert.equal(again.body.Code, 'InvalidSourceId.NotFound');
  });
});

describe('heartbeats are written in batches: within the flush interval, and at shutdown', () => {
  it('the stored LastHeartbeatTime catches up by itself within a third of the heartbeat period, and the last beats are written on close', async () => {
    const dir = tempDir();
    const s = await startTestServer({ dir, heartbeatRateSeconds: 3, keepDir: true });
    let reopened: Awaited<ReturnType<typeof openStore>> | undefined;
    try {
      const created = await callV1(s.url, s.root, 'CreateAccessToken', {});
      const code = { id: created.body.AccessTokenId, secret: created.body.AccessTokenCode };
      const imported = (await callV1(s.url, code, 'ImportSourceServer', { MachineId: 'batched' })).body;
      const key = { id: imported.SourceKeyId, secret: imported.SourceKeySecret };
      const stored = async () => (await s.server.options.store.getSource(imported.SourceId))!;
      const importedAt = (await stored()).lastHeartbeatAt;
      await new Promise((r) => setTimeout(r, 1_100));
      const sent = Date.now();
      assert.equal((await callV1(s.url, key, 'ReportSourceServerHeartbeat', { SourceId: imported.SourceId, StatusInfo: 'first' })).status, 200);
      // The 3 s period flushes every second: the beat is stored by then, without any other request.
      let written = await stored();
      for (let i = 0; i < 40 && written.lastHeartbeatAt === importedAt; i++) {
        await new Promise((r) => setTimeout(r, 50));
        written = await stored();
      }
      assert.ok(written.lastHeartbeatAt >= sent, 'the beat reached the store');
      assert.ok(Date.now() - sent < 1_900, `within the flush interval (${Date.now() - sent} ms)`);
      assert.equal(written.statusInfo, 'first');
      // A beat answered just before the server stops is written by the stop itself.
      assert.equal((await callV1(s.url, key, 'ReportSourceServerHeartbeat', { SourceId: imported.SourceId, StatusInfo: 'last words' })).status, 200);
      await s.close();
      reopened = await openStore(`sqlite:${join(dir, 'smcd.db')}`);
      assert.equal((await reopened.getSource(imported.SourceId))!.statusInfo, 'last words');
    } finally {
      await reopened?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
