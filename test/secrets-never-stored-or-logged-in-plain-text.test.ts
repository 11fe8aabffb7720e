import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { readRootCredentials } from '../src/bootstrap.ts';
import { callV1, callV3 } from './helpers/sign.ts';
import { SMCD_BIN, startServerProcess } from './helpers/process-server.ts';
import { tempDir } from './helpers/server.ts';

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

describe('secrets never appear in plain text in the data directory or the logs', () => {
  const dir = tempDir();
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('after the whole lifecycle, no code, access key secret or source key secret is found byte for byte', async () => {
    const server = await startServerProcess(['--data-dir', dir, '--log-level', 'debug']);
    const c = readRootCredentials(dir)!;
    const root = { id: c.AccessKeyId, secret: c.AccessKeySecret };
    const secrets: string[] = [];
    try {
      // An extra access key, made with the local admin command.
      const key = JSON.parse(execFileSync(process.execPath, [SMCD_BIN, 'keys', 'create', '--data-dir', dir, '--output', 'json'], { encoding: 'utf8' }));
      secrets.push(key.AccessKeySecret);
      const operator = { id: key.AccessKeyId, secret: key.AccessKeySecret };
      for (let i = 0; i < 5; i++) {
        const created = await (i % 2 ? callV3 : callV1)(server.url, i % 3 ? root : operator, 'CreateAccessToken', { Name: `scan${i}`, Count: '3' });
        assert.equal(created.status, 200, created.text);
        const code = { id: created.body.AccessTokenId, secret: created.body.AccessTokenCode };
        secrets.push(code.secret);
        // Import a source with the code, heartbeat with its key, then a failed import with a wrong code.
        const imported = await callV1(server.url, code, 'ImportSourceServer', { MachineId: `m-${i}`, Hostname: `host${i}` });
        assert.equal(imported.status, 200, imported.text);
        secrets.push(imported.body.SourceKeySecret);
        const beat = await callV1(server.url, { id: imported.body.SourceKeyId, secret: imported.body.SourceKeySecret }, 'ReportSourceServerHeartbeat', { SourceId: imported.body.SourceId });
        assert.equal(beat.status, 200, beat.text);
        // A re-import rotates the source secret: the new one must not leak either.
        const again = await callV1(server.url, code, 'ImportSourceServer', { MachineId: `m-${i}` });
        secrets.push(again.body.SourceKeySecret);
        assert.equal((await callV1(server.url, { id: code.id, secret: code.secret.toLowerCase() }, 'ImportSourceServer', { MachineId: 'x' })).body.Code, 'SignatureDoesNotMatch');
        if (i === 1) assert.equal((await callV1(server.url, root, 'DisableAccessToken', { AccessTokenId: code.id })).status, 200);
        if (i === 2) assert.equal((await callV1(server.url, root, 'DeleteAccessToken', { AccessTokenId: code.id })).status, 200);
        if (i === 3) assert.equal((await callV1(server.url, root, 'DeleteSourceServer', { SourceId: imported.body.SourceId })).status, 200);
      }
      execFileSync(process.execPath, [SMCD_BIN, 'keys', 'disable', key.AccessKeyId, '--data-dir', dir]);
    } finally {
      assert.equal(await server.stop(), 0);
    }
    secrets.push(root.secret);
    assert.equal(new Set(secrets).size, secrets.length);

    const logs = Buffer.from(server.output.join('\n'));
    assert.ok(logs.length > 1000, 'the server logged its requests');
    let scanned = logs.length;
    for (const secret of secrets) assert.equal(logs.indexOf(secret), -1, 'a secret appears in the server log');
    for (const file of filesUnder(dir)) {
      // The root credentials file exists to hand the root secret to the operator, mode 0600.
      if (file.endsWith('root-credentials.json')) {
        assert.equal(statSync(file).mode & 0o777, 0o600);
        continue;
      }
      const bytes = readFileSync(file);
      scanned += bytes.length;
      for (const secret of secrets) assert.equal(bytes.indexOf(secret), -1, `a secret appears in ${file}`);
    }
    assert.equal(statSync(join(dir, 'master.key')).mode & 0o777, 0o600);
    assert.ok(scanned > 10_000, `scanned ${scanned} bytes`);
  });
});
