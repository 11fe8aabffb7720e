import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { readRootCredentials } from '../src/bootstrap.ts';
import { startServerProcess } from './helpers/process-server.ts';
import { tempDir } from './helpers/server.ts';
import { encodeForm, v1Params } from './helpers/sign.ts';

describe('nonces are persisted: a replay is refused after a restart', () => {
  const dir = tempDir();
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`a request replayed after the server was stopped with ${signal} gets SignatureNonceUsed`, async () => {
      let server = await startServerProcess(['--data-dir', dir]);
      const c = readRootCredentials(dir)!;
      const query = encodeForm(v1Params({ id: c.AccessKeyId, secret: c.AccessKeySecret }, 'CreateAccessToken', { Name: `replay_${signal}` }));
      const first = await fetch(`${server.url}/?${query}`);
      assert.equal(first.status, 200);
      await server.stop(signal);
      server = await startServerProcess(['--data-dir', dir]);
      try {
        const replay = await fetch(`${server.url}/?${query}`);
        const body = await replay.json();
        assert.equal(replay.status, 400);
        assert.equal(body.Code, 'SignatureNonceUsed');
      } finally {
        await server.stop();
      }
    });
  }

  it('a heartbeat, answered before its nonce is written (API.md 5.1), is refused when replayed, before and after a restart', async () => {
    let server = await startServerProcess(['--data-dir', dir]);
    const c = readRootCredentials(dir)!;
    const root = { id: c.AccessKeyId, secret: c.AccessKeySecret };
    const call = async (url: string, creds: { id: string; secret: string }, action: string, params: Record<string, string>) => {
      const res = await fetch(`${url}/`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: encodeForm(v1Params(creds, action, params, { method: 'POST' })),
      });
      return { status: res.status, body: await res.json() };
    };
    try {
      const code = (await call(server.url, root, 'CreateAccessToken', { Name: 'replayed_beat' })).body;
      const imported = await call(server.url, { id: code.AccessTokenId, secret: code.AccessTokenCode }, 'ImportSourceServer', {
        MachineId: 'replayed-beat-machine',
      });
      assert.equal(imported.status, 200, JSON.stringify(imported.body));
      const sourceKey = { id: imported.body.SourceKeyId, secret: imported.body.SourceKeySecret };
      const beat = encodeForm(v1Params(sourceKey, 'ReportSourceServerHeartbeat', { SourceId: imported.body.SourceId }, { method: 'POST' }));
      const send = async () => {
        const res = await fetch(`${server.url}/`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: beat });
        return { status: res.status, body: await res.json() };
      };
      const first = await send();
      assert.equal(first.status, 200, JSON.stringify(first.body));
      // At once, before the commit its nonce joined was fsynced (it asked for none).
      const replayed = await send();
      assert.equal(replayed.status, 400);
      assert.equal(replayed.body.Code, 'SignatureNonceUsed');
      // Committed, so the next process refuses it too.
      await server.stop('SIGTERM');
      server = await startServerProcess(['--data-dir', dir]);
      const afterRestart = await send();
      assert.equal(afterRestart.status, 400);
      assert.equal(afterRestart.body.Code, 'SignatureNonceUsed');

      // Written without an fsync, a heartbeat's nonce and time still survive a kill -9 once
      // written (the nonce in its event-loop turn's commit, the time within HeartbeatRate/3 and at most 2 s).
      const second = encodeForm(v1Params(sourceKey, 'ReportSourceServerHeartbeat', { SourceId: imported.body.SourceId }, { method: 'POST' }));
      const sendSecond = async () =>
        fetch(`${server.url}/`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: second });
      // Apart from the first beat by more than the times' one-second resolution.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const beforeKill = Date.now();
      assert.equal((await sendSecond()).status, 200);
      await new Promise((resolve) => setTimeout(resolve, 4_000));
      await server.stop('SIGKILL');
      server = await startServerProcess(['--data-dir', dir]);
      const replayAfterKill = await sendSecond();
      assert.equal(replayAfterKill.status, 400);
      assert.equal((await replayAfterKill.json()).Code, 'SignatureNonceUsed');
      const described = await call(server.url, root, 'DescribeSourceServers', { 'SourceId.1': imported.body.SourceId });
      const last = Date.parse(described.body.SourceServers.SourceServer[0].LastHeartbeatTime);
      assert.ok(
        last > beforeKill - 1_000,
        `LastHeartbeatTime ${described.body.SourceServers.SourceServer[0].LastHeartbeatTime} is the beat before the kill`,
      );
    } finally {
      await server.stop();
    }
  });
});
