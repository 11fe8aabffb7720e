import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { assertShell, readStateFile, runAgent, scratchDir, shell, shellSkip } from './helpers/shell-agent.ts';
import { callV1 } from './helpers/sign.ts';

const SUCCESS = /^Import Source Server \[(s-[a-z0-9]{20})\] Successfully!\n$/;

const sh = shell('dash');

describe('the shell agent with a code that requires approval, against a real server', shellSkip(sh), () => {
  let s: TestServer;
  before(async () => {
    assertShell(sh);
    s = await startTestServer();
  });
  after(() => s?.close());

  async function api(action: string, params: Record<string, string>) {
    const r = await callV1(s.url, s.root, action, params);
    assert.equal(r.status, 200, `${action}: ${r.text}`);
    return r.body;
  }
  const approvalOf = async (sourceId: string) => (await api('DescribeSourceServers', { 'SourceId.1': sourceId })).SourceServers.SourceServer[0];
  /** Heartbeats the server answered 200, from its request log, for this source key. */
  const beatsOf = (keyId: string) =>
    s.logs.filter((line) => {
      const entry = JSON.parse(line);
      return entry.action === 'ReportSourceServerHeartbeat' && entry.status === 200 && entry.keyId === keyId;
    }).length;

  async function importMachine(code: { id: string; code: string }, machineId: string) {
    const state = join(scratchDir('smcd-state-'), 'agent', 'state');
    const env = { SMCD_STATE_FILE: state, SMCD_MACHINE_ID: machineId };
    const imported = await runAgent(sh, ['import', '--endpoint', s.url], { env: { ...env, SMCD_CODE_ID: code.id, SMCD_CODE: code.code } });
    assert.equal(imported.code, 0, imported.stderr);
    const sourceId = SUCCESS.exec(imported.stdout)?.[1];
    assert.ok(sourceId, imported.stdout);
    return { sourceId, keyId: readStateFile(state).source_key_id!, env };
  }

  it('imports Pending and heartbeats; once approved it is Approved and keeps heartbeating; a rejected source gets InvalidAccessKeyId.NotFound', async () => {
    const created = await api('CreateAccessToken', { RequireApproval: 'true', 'Tag.1.Key': 'wave', 'Tag.1.Value': '1' });
    const code = { id: String(created.AccessTokenId), code: String(created.AccessTokenCode) };

    const a = await importMachine(code, `approve-${process.pid}`);
    const pending = await approvalOf(a.sourceId);
    assert.equal(pending.ApprovalStatus, 'Pending');
    assert.deepEqual(pending.Tags.Tag, [{ Key: 'wave', Value: '1' }], 'the code tags the source at its first import');
    const beat = await runAgent(sh, ['heartbeat'], { env: a.env });
    assert.equal(beat.code, 0, beat.stderr);
    assert.equal(beatsOf(a.keyId), 1, 'a Pending source heartbeats normally');

    await api('ApproveSourceServers', { 'SourceId.1': a.sourceId });
    assert.equal((await approvalOf(a.sourceId)).ApprovalStatus, 'Approved');
    const after = await runAgent(sh, ['heartbeat'], { env: a.env });
    assert.equal(after.code, 0, after.stderr);
    assert.equal(beatsOf(a.keyId), 2);

    const b = await importMachine(code, `reject-${process.pid}`);
    assert.equal((await approvalOf(b.sourceId)).ApprovalStatus, 'Pending');
    await api('RejectSourceServers', { 'SourceId.1': b.sourceId });
    assert.equal(await approvalOf(b.sourceId), undefined);
    const refused = await runAgent(sh, ['heartbeat'], { env: b.env });
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      new RegExp(`no longer accepts the key of source ${b.sourceId} \\(InvalidAccessKeyId\\.NotFound\\): the source was deleted or rejected`),
    );
    assert.equal(beatsOf(b.keyId), 0);
    const refusedLogged = s.logs.some((line) => {
      const entry = JSON.parse(line);
      return entry.action === 'ReportSourceServerHeartbeat' && entry.status === 404 && entry.code === 'InvalidAccessKeyId.NotFound';
    });
    assert.ok(refusedLogged, 'the server answered the rejected key 404 InvalidAccessKeyId.NotFound');
  });
});
