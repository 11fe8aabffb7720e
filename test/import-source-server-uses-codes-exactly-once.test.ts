import assert from 'node:assert/strict';
import { createHmac, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer, testClock } from './helpers/server.ts';
import { type Creds, callV1, callV3 } from './helpers/sign.ts';

const DAY = 86_400_000;

describe('ImportSourceServer: one use per new machine, atomically, refused in the contract order', () => {
  let s: TestServer;
  const clock = testClock();
  const ts = () => `${new Date(clock()).toISOString().slice(0, 19)}Z`;
  before(async () => {
    s = await startTestServer({ clock, authFailureLimit: 100_000 });
  });
  after(() => s.close());

  async function newCode(params: Record<string, string> = {}): Promise<Creds> {
    const r = await callV1(s.url, s.root, 'CreateAccessToken', params, { timestamp: ts() });
    assert.equal(r.status, 200, r.text);
    return { id: r.body.AccessTokenId, secret: r.body.AccessTokenCode };
  }
  const importWith = (code: Creds, params: Record<string, string>) =>
    callV1(s.url, code, 'ImportSourceServer', params, { method: 'POST', timestamp: ts() });
  /** API.md 5.2, computed here independently of the server's code: hex HMAC-SHA256(secret, MachineId + "\n" + nonce). */
  const proof = (owner: { SourceKeyId: string; SourceKeySecret: string }, machineId: string, nonce: string) => ({
    SourceKeyId: owner.SourceKeyId,
    SourceProof: createHmac('sha256', owner.SourceKeySecret).update(`${machineId}\n${nonce}`).digest('hex'),
  });
  /** A re-import from the machine that holds its source's key: the proof goes with it. */
  const reimportWith = (code: Creds, params: Record<string, string>, owner: { SourceKeyId: string; SourceKeySecret: string }) => {
    const nonce = randomUUID();
    return callV1(
      s.url,
      code,
      'ImportSourceServer',
      { ...params, ...proof(owner, params.MachineId!, nonce) },
      { method: 'POST', timestamp: ts(), nonce },
    );
  };
  const token = async (id: string) =>
    (await callV1(s.url, s.root, 'ListAccessTokens', { 'AccessTokenId.1': id }, { timestamp: ts() })).body.AccessTokens.AccessToken[0];
  const source = async (id: string) =>
    (await callV1(s.url, s.root, 'DescribeSourceServers', { 'SourceId.1': id }, { timestamp: ts() })).body.SourceServers.SourceServer[0];

  it('Count=5 and 50 concurrent imports of distinct machines: exactly 5 succeed, 45 CountExceeded', async () => {
    const code = await newCode({ Count: '5' });
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => importWith(code, { MachineId: `race-${i}`, Hostname: `race${i}` })));
    const ok = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status === 403 && r.body.Code === 'AccessToken.CountExceeded');
    assert.equal(ok.length, 5);
    assert.equal(refused.length, 45);
    assert.equal(new Set(ok.map((r) => r.body.SourceId)).size, 5);
    const t = await token(code.id);
    assert.equal(t.RegisteredCount, '5');
    assert.equal(t.Status, 'unactivated');
  });

  it('imports with every field; Name defaults to Hostname; the response carries the source key once', async () => {
    const code = await newCode({ Count: '3' });
    const r = await importWith(code, {
      MachineId: 'full-1',
      Hostname: 'web-01.example',
      Platform: 'Debian GNU/Linux 12',
      Architecture: 'x86_64',
      KernelLevel: '6',
      AgentVersion: '0.1.0',
      SystemDiskSize: '40',
      'DataDisk.1.Index': '1',
      'DataDisk.1.Path': '/data',
      'DataDisk.1.Size': '100',
      'DataDisk.2.Index': '2',
      'DataDisk.2.Path': '/logs',
      'DataDisk.2.Size': '20',
      SystemInfo: JSON.stringify({ hostname: 'web-01.example', cores: 4, memory: 8 }),
    });
    assert.equal(r.status, 200, r.text);
    assert.match(r.body.SourceId, /^s-[a-z0-9]{20}$/);
    assert.match(r.body.SourceKeyId, /^sk-[a-z0-9]{20}$/);
    assert.match(r.body.SourceKeySecret, /^[A-Za-z0-9]{32}$/);
    const src = await source(r.body.SourceId);
    assert.deepEqual(
      {
        Name: src.Name,
        State: src.State,
        Platform: src.Platform,
        Architecture: src.Architecture,
        KernelLevel: src.KernelLevel,
        SystemDiskSize: src.SystemDiskSize,
        AccessTokenId: src.AccessTokenId,
        MachineId: src.MachineId,
        HeartbeatRate: src.HeartbeatRate,
      },
      {
        Name: 'web-01.example',
        State: 'Available',
        Platform: 'Debian GNU/Linux 12',
        Architecture: 'x86_64',
        KernelLevel: 6,
        SystemDiskSize: 40,
        AccessTokenId: code.id,
        MachineId: 'full-1',
        HeartbeatRate: 30,
      },
    );
    assert.deepEqual(src.DataDisks.DataDisk, [
      { Index: 1, Path: '/data', Size: 100 },
      { Index: 2, Path: '/logs', Size: 20 },
    ]);
    assert.deepEqual(JSON.parse(src.SystemInfo), { hostname: 'web-01.example', cores: 4, memory: 8 });
    assert.equal(src.LastHeartbeatTime, ts());
    assert.deepEqual([src.FirstImportTime, src.LastImportTime, src.FirstClientIp, src.LastClientIp], [ts(), ts(), '127.0.0.1', '127.0.0.1']);
    assert.ok(!JSON.stringify(src).includes(r.body.SourceKeySecret));
  });

  it('a re-import of the same machine keeps SourceId and SourceKeyId, uses no slot, and rotates the secret', async () => {
    const code = await newCode({ Count: '2' });
    const first = await importWith(code, { MachineId: 'again', Hostname: 'h1' });
    const importedAt = ts();
    clock.advance(5000);
    const second = await reimportWith(code, { MachineId: 'again', Hostname: 'h2' }, first.body);
    assert.equal(second.status, 200, second.text);
    assert.equal(second.body.SourceId, first.body.SourceId);
    assert.equal(second.body.SourceKeyId, first.body.SourceKeyId);
    assert.notEqual(second.body.SourceKeySecret, first.body.SourceKeySecret);
    assert.equal((await token(code.id)).RegisteredCount, '1');
    // The source's facts follow the machine; its name, once set, stays unless Name is sent.
    const updated = await source(first.body.SourceId);
    assert.deepEqual([updated.Hostname, updated.Name], ['h2', 'h1']);
    assert.deepEqual([updated.FirstImportTime, updated.LastImportTime], [importedAt, ts()]);
    // The old secret stops working at once.
    const old = await callV1(
      s.url,
      { id: first.body.SourceKeyId, secret: first.body.SourceKeySecret },
      'ReportSourceServerHeartbeat',
      { SourceId: first.body.SourceId },
      { timestamp: ts() },
    );
    assert.equal(old.body.Code, 'SignatureDoesNotMatch');
    const fresh = await callV1(
      s.url,
      { id: second.body.SourceKeyId, secret: second.body.SourceKeySecret },
      'ReportSourceServerHeartbeat',
      { SourceId: first.body.SourceId },
      { timestamp: ts() },
    );
    assert.equal(fresh.status, 200);
  });

  it("a re-import without Name keeps the operator's name and description; with Name it sets it", async () => {
    const code = await newCode();
    const first = await importWith(code, { MachineId: 'renamed', Hostname: 'h-orig' });
    assert.equal((await source(first.body.SourceId)).Name, 'h-orig');
    const mod = await callV1(
      s.url,
      s.root,
      'ModifySourceServerAttribute',
      { SourceId: first.body.SourceId, Name: 'db-primary', Description: 'kept' },
      { timestamp: ts() },
    );
    assert.equal(mod.status, 200);
    const second = await reimportWith(code, { MachineId: 'renamed', Hostname: 'h-new' }, first.body);
    const kept = await source(first.body.SourceId);
    assert.deepEqual([kept.Name, kept.Description], ['db-primary', 'kept']);
    assert.equal((await reimportWith(code, { MachineId: 'renamed', Hostname: 'h-new', Name: 'explicit' }, second.body)).status, 200);
    assert.equal((await source(first.body.SourceId)).Name, 'explicit');
  });

  it('a re-import after the source was deleted creates it anew and still uses no slot', async () => {
    const code = await newCode({ Count: '1' });
    const first = await importWith(code, { MachineId: 'phoenix' });
    assert.equal((await callV1(s.url, s.root, 'DeleteSourceServer', { SourceId: first.body.SourceId }, { timestamp: ts() })).status, 200);
    const second = await importWith(code, { MachineId: 'phoenix' });
    assert.equal(second.status, 200, second.text);
    assert.notEqual(second.body.SourceId, first.body.SourceId);
    assert.equal((await token(code.id)).RegisteredCount, '1');
  });

  it('a machine imported with another code uses a slot of the new code, keeps its SourceId and points at the new code', async () => {
    const a = await newCode();
    const b = await newCode();
    const first = await importWith(a, { MachineId: 'mover' });
    const second = await reimportWith(b, { MachineId: 'mover' }, first.body);
    assert.equal(second.status, 200, second.text);
    assert.equal(second.body.SourceId, first.body.SourceId);
    assert.equal((await token(b.id)).RegisteredCount, '1');
    assert.equal((await token(a.id)).RegisteredCount, '1');
    assert.equal((await source(first.body.SourceId)).AccessTokenId, b.id);
  });

  it('a MachineId that has a source cannot be taken over without proof of its key: 409, and nothing changes', async () => {
    const owned = await newCode({ Count: '3' });
    const other = await newCode({ Count: '3' });
    const first = await importWith(owned, { MachineId: 'owned-1', Hostname: 'rightful' });
    const owner = first.body;
    const attempts: Array<[string, Promise<Awaited<ReturnType<typeof importWith>>>]> = [
      ['no proof, same code', importWith(owned, { MachineId: 'owned-1', Hostname: 'intruder' })],
      ['no proof, another code', importWith(other, { MachineId: 'owned-1', Hostname: 'intruder' })],
      ['key id only', importWith(other, { MachineId: 'owned-1', SourceKeyId: owner.SourceKeyId })],
      // The proof of another request: right key, but made for another nonce.
      ['proof for another nonce', importWith(other, { MachineId: 'owned-1', ...proof(owner, 'owned-1', 'some-other-nonce') })],
      [
        'proof under a wrong secret',
        importWith(other, { MachineId: 'owned-1', ...proof({ ...owner, SourceKeySecret: 'x'.repeat(32) }, 'owned-1', 'n') }),
      ],
    ];
    for (const [what, pending] of attempts) {
      const r = await pending;
      assert.equal(r.status, 409, what);
      assert.equal(r.body.Code, 'SourceServer.MachineIdInUse', what);
      assert.match(r.body.Message, new RegExp(owner.SourceId), 'the message names the source');
      assert.match(r.body.Recommend, /delete that source/);
      assert.match(r.body.RequestId, /^[0-9A-F-]{36}$/);
    }
    assert.equal((await token(owned.id)).RegisteredCount, '1');
    assert.equal((await token(other.id)).RegisteredCount, '0', 'a refused import uses nothing');
    const src = await source(owner.SourceId);
    assert.deepEqual([src.Hostname, src.AccessTokenId], ['rightful', owned.id]);
    const beat = await callV1(
      s.url,
      { id: owner.SourceKeyId, secret: owner.SourceKeySecret },
      'ReportSourceServerHeartbeat',
      { SourceId: owner.SourceId },
      { timestamp: ts() },
    );
    assert.equal(beat.status, 200, "the rightful machine's key still works");

    // V3 binds the proof to x-acs-signature-nonce.
    const nonce = randomUUID();
    const v3 = await callV3(s.url, other, 'ImportSourceServer', { MachineId: 'owned-1', ...proof(owner, 'owned-1', nonce) }, { date: ts(), nonce });
    assert.equal(v3.status, 200, v3.text);
    assert.equal(v3.body.SourceId, owner.SourceId);
  });

  it('ownership is checked after the code refusals and before the count', async () => {
    const full = await newCode({ Count: '1' });
    const first = await importWith(full, { MachineId: 'order-1' });
    const usedUp = await newCode({ Count: '1' });
    assert.equal((await importWith(usedUp, { MachineId: 'order-2' })).status, 200);
    assert.equal((await importWith(usedUp, { MachineId: 'order-1' })).body.Code, 'SourceServer.MachineIdInUse');
    assert.equal((await reimportWith(usedUp, { MachineId: 'order-1' }, first.body)).body.Code, 'AccessToken.CountExceeded');
    const narrow = await newCode({ IpAddressRange: '10.0.0.0/8' });
    const refused = await importWith(narrow, { MachineId: 'order-1' });
    assert.equal(refused.body.Code, 'AccessToken.IpNotAllowed');
    assert.match(refused.body.Message, /\(127\.0\.0\.1\)/, 'the message names the address the server saw');
  });

  it('refusals: Disabled, Expired, IpNotAllowed, CountExceeded, checked in that order', async () => {
    const disabled = await newCode({ Count: '1', IpAddressRange: '10.0.0.0/8', TimeToLiveInDays: '1' });
    await importWith(disabled, { MachineId: 'x' }).then((r) => assert.equal(r.body.Code, 'AccessToken.IpNotAllowed'));
    assert.equal((await callV1(s.url, s.root, 'DisableAccessToken', { AccessTokenId: disabled.id }, { timestamp: ts() })).status, 200);
    const r1 = await importWith(disabled, { MachineId: 'x' });
    assert.equal(r1.status, 403);
    assert.equal(r1.body.Code, 'AccessToken.Disabled');

    const expiring = await newCode({ Count: '1', IpAddressRange: '10.0.0.0/8', TimeToLiveInDays: '1' });
    const usedUp = await newCode({ Count: '1', TimeToLiveInDays: '1' });
    const only = await importWith(usedUp, { MachineId: 'only' });
    assert.equal(only.status, 200);
    const r2 = await importWith(usedUp, { MachineId: 'second' });
    assert.equal(r2.body.Code, 'AccessToken.CountExceeded');
    const allowed = await newCode({ IpAddressRange: '127.0.0.0/8,::1' });
    assert.equal((await importWith(allowed, { MachineId: 'local' })).status, 200);

    clock.advance(DAY);
    const r3 = await importWith(expiring, { MachineId: 'x' });
    assert.equal(r3.status, 403);
    assert.equal(r3.body.Code, 'AccessToken.Expired');
    // Expired wins over used up; re-import of a known machine on an expired code is refused too.
    assert.equal((await importWith(usedUp, { MachineId: 'second' })).body.Code, 'AccessToken.Expired');
    assert.equal((await reimportWith(usedUp, { MachineId: 'only' }, only.body)).body.Code, 'AccessToken.Expired');
  });

  it('a deleted code cannot import; its sources stay and keep its AccessTokenId', async () => {
    const code = await newCode();
    const imported = await importWith(code, { MachineId: 'orphan' });
    assert.equal((await callV1(s.url, s.root, 'DeleteAccessToken', { AccessTokenId: code.id }, { timestamp: ts() })).status, 200);
    assert.equal((await importWith(code, { MachineId: 'orphan2' })).body.Code, 'InvalidAccessKeyId.NotFound');
    assert.equal((await source(imported.body.SourceId)).AccessTokenId, code.id);
    const again = await callV1(s.url, s.root, 'DeleteAccessToken', { AccessTokenId: code.id }, { timestamp: ts() });
    assert.equal(again.status, 404);
    assert.equal(again.body.Code, 'InvalidAccessTokenId.NotFound');
    const dis = await callV1(s.url, s.root, 'DisableAccessToken', { AccessTokenId: 'at-nope' }, { timestamp: ts() });
    assert.equal(dis.body.Code, 'InvalidAccessTokenId.NotFound');
  });

  it('an activation code may call ImportSourceServer only: anything else is Forbidden.RAM', async () => {
    const code = await newCode();
    for (const action of ['ListAccessTokens', 'CreateAccessToken', 'DescribeSourceServers', 'DeleteAccessToken']) {
      const r = await callV1(s.url, code, action, { AccessTokenId: code.id }, { timestamp: ts() });
      assert.equal(r.status, 403, action);
      assert.equal(r.body.Code, 'Forbidden.RAM');
    }
    // And an access key may not import.
    const r = await callV1(s.url, s.root, 'ImportSourceServer', { MachineId: 'm' }, { timestamp: ts() });
    assert.equal(r.body.Code, 'Forbidden.RAM');
  });

  it('ImportSourceServer validates its parameters', async () => {
    const code = await newCode();
    const cases: Array<[Record<string, string>, string]> = [
      [{}, 'MissingMachineId'],
      [{ MachineId: 'm'.repeat(129) }, 'InvalidParameter.MachineId'],
      [{ MachineId: 'm', SystemInfo: '[1,2]' }, 'InvalidParameter.SystemInfo'],
      [{ MachineId: 'm', SystemInfo: JSON.stringify({ pad: 'x'.repeat(1100) }) }, 'InvalidParameter.SystemInfo'],
      [{ MachineId: 'm', SystemDiskSize: 'big' }, 'InvalidParameter.SystemDiskSize'],
      [{ MachineId: 'm', 'DataDisk.1.Size': '-1' }, 'InvalidParameter.DataDisk.1.Size'],
      [{ MachineId: 'm', 'DataDisk.x.Size': '1' }, 'InvalidParameter.DataDisk'],
      [{ MachineId: 'm', Name: '9lives' }, 'InvalidParameter.Name'],
    ];
    for (const [params, expected] of cases) {
      const r = await callV3(s.url, code, 'ImportSourceServer', params, { date: ts() });
      assert.equal(r.body.Code, expected, JSON.stringify(params));
    }
    assert.equal((await token(code.id)).RegisteredCount, '0');
  });
});
