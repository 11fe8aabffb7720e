import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { readRootCredentials } from '../src/bootstrap.ts';
import { startServerProcess } from './helpers/process-server.ts';
import { tempDir } from './helpers/server.ts';
import { callV1 } from './helpers/sign.ts';
import { openTestDatabase, STORE_KINDS, storeSkipReason } from './helpers/stores.ts';

for (const kind of STORE_KINDS) {
  describe(`an acknowledged change keeps its audit event across kill -9 (${kind})`, { skip: await storeSkipReason(kind) }, () => {
    const dir = tempDir();
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('the events of the changes acknowledged right before SIGKILL are there after a restart on the same data', async () => {
      const db = await openTestDatabase(kind, dir);
      const args = ['--data-dir', dir, '--database', db.url];
      let server = await startServerProcess(args);
      const c = readRootCredentials(dir)!;
      const root = { id: c.AccessKeyId, secret: c.AccessKeySecret };
      try {
        const created = await callV1(server.url, root, 'CreateAccessToken', { Count: '1' }, { method: 'POST' });
        assert.equal(created.status, 200, created.text);
        const code = { id: created.body.AccessTokenId, secret: created.body.AccessTokenCode };
        const imported = await callV1(server.url, code, 'ImportSourceServer', { MachineId: 'kill-9' }, { method: 'POST' });
        assert.equal(imported.status, 200, imported.text);
        const disabled = await callV1(server.url, root, 'DisableAccessToken', { AccessTokenId: code.id }, { method: 'POST' });
        assert.equal(disabled.status, 200, disabled.text);
        // No graceful stop: whatever was acknowledged must already be durable.
        server.child.kill('SIGKILL');
        await server.stop();

        server = await startServerProcess(args);
        const r = await callV1(server.url, root, 'DescribeAuditEvents', {});
        assert.equal(r.status, 200, r.text);
        const ofRequest = (requestId: string) =>
          r.body.Events.Event.filter((e: { RequestId: string }) => e.RequestId === requestId).map((e: { EventType: string }) => e.EventType);
        assert.deepEqual(ofRequest(created.body.RequestId), ['AccessToken.Create']);
        assert.deepEqual(ofRequest(imported.body.RequestId), ['AccessToken.Exhausted', 'SourceServer.Import'], 'the import took the last use');
        assert.deepEqual(ofRequest(disabled.body.RequestId), ['AccessToken.Disable']);
        const types = r.body.Events.Event.map((e: { EventType: string }) => e.EventType);
        assert.deepEqual(
          types.slice(0, 4),
          ['AccessToken.Disable', 'AccessToken.Exhausted', 'SourceServer.Import', 'AccessToken.Create'],
          'newest first',
        );
      } finally {
        await server.stop();
        await db.drop();
      }
    });
  });
}
