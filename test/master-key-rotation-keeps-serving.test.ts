import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { readRootCredentials } from '../src/bootstrap.ts';
import { SMCD_BIN, startServerProcess } from './helpers/process-server.ts';
import { tempDir } from './helpers/server.ts';
import { callV1 } from './helpers/sign.ts';

describe('the master key rotates while a server keeps serving, and a wrong key refuses to start', () => {
  const dir = tempDir();
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('rotate-master re-seals every secret; the running server picks the new key up; old codes still work', async () => {
    const server = await startServerProcess(['--data-dir', dir]);
    try {
      const c = readRootCredentials(dir)!;
      const root = { id: c.AccessKeyId, secret: c.AccessKeySecret };
      const created = await callV1(server.url, root, 'CreateAccessToken', { Count: '5' });
      const code = { id: created.body.AccessTokenId, secret: created.body.AccessTokenCode };
      const imported = await callV1(server.url, code, 'ImportSourceServer', { MachineId: 'before' });
      assert.equal(imported.status, 200);
      const oldKey = readFileSync(join(dir, 'master.key'), 'utf8');

      const out = execFileSync(process.execPath, [SMCD_BIN, 'keys', 'rotate-master', '--data-dir', dir], { encoding: 'utf8' });
      assert.match(out, /re-sealed [1-9]\d* secrets/);
      assert.notEqual(readFileSync(join(dir, 'master.key'), 'utf8'), oldKey);
      assert.equal(readFileSync(join(dir, 'master.key.previous'), 'utf8'), oldKey);
      assert.equal(statSync(join(dir, 'master.key')).mode & 0o777, 0o600);
      assert.ok(!existsSync(join(dir, 'master.key.next')));

      // Without a restart: root key, code and source key, all re-sealed, still verify.
      assert.equal((await callV1(server.url, root, 'ListAccessTokens')).status, 200);
      assert.equal((await callV1(server.url, code, 'ImportSourceServer', { MachineId: 'after' })).status, 200);
      const source = { id: imported.body.SourceKeyId, secret: imported.body.SourceKeySecret };
      assert.equal((await callV1(server.url, source, 'ReportSourceServerHeartbeat', { SourceId: imported.body.SourceId })).status, 200);
      assert.equal((await callV1(server.url, root, 'CreateAccessToken', {})).status, 200);
    } finally {
      await server.stop();
    }
    execFileSync(process.execPath, [SMCD_BIN, 'keys', 'reseal', '--data-dir', dir]);
    rmSync(join(dir, 'master.key.previous'));
    // With only the new key, everything still opens after a restart.
    const again = await startServerProcess(['--data-dir', dir]);
    try {
      const c = readRootCredentials(dir)!;
      assert.equal((await callV1(again.url, { id: c.AccessKeyId, secret: c.AccessKeySecret }, 'ListAccessTokens')).body.TotalCount, 2);
    } finally {
      await again.stop();
    }
  });

  it('a node started with another master key refuses to start with a clear message', () => {
    const r = spawnSync(process.execPath, [SMCD_BIN, 'serve', '--port', '0', '--data-dir', dir], {
      env: { ...process.env, SMCD_MASTER_KEY: 'ab'.repeat(32), SMCD_LOG_LEVEL: 'info' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(r.status, 1);
    assert.match(r.stdout + r.stderr, /master key from SMCD_MASTER_KEY is not the one this database was written with/);
  });
});
