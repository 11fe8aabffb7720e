import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { readRootCredentials, rootCredentialsPath } from '../src/bootstrap.ts';
import { SMCD_BIN } from './helpers/process-server.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { callV1 } from './helpers/sign.ts';

describe('smcd keys rotate-root', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer();
  });
  after(() => s.close());

  it('gives the root key a new secret that works at once, while the old one stops working', async () => {
    const old = s.root;
    assert.equal((await callV1(s.url, old, 'ListAccessTokens')).status, 200);
    const run = spawnSync(process.execPath, [SMCD_BIN, 'keys', 'rotate-root', '--data-dir', s.dir], { encoding: 'utf8' });
    assert.equal(run.status, 0);
    const out = run.stdout;
    assert.match(out, /has a new secret/);
    // The change leaves an audit line (JSON on stderr) naming the key, not its secret.
    const audit = run.stderr
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .find((l) => l.audit === 'keys.rotate-root');
    assert.equal(audit?.accessKeyId, old.id);
    const c = readRootCredentials(s.dir)!;
    assert.equal(c.AccessKeyId, old.id);
    assert.notEqual(c.AccessKeySecret, old.secret);
    assert.ok(!out.includes(c.AccessKeySecret) && !run.stderr.includes(c.AccessKeySecret), 'the new secret is written to the file, not printed');
    assert.equal(statSync(rootCredentialsPath(s.dir)).mode & 0o777, 0o600);
    assert.equal((await callV1(s.url, old, 'ListAccessTokens')).body.Code, 'SignatureDoesNotMatch');
    assert.equal((await callV1(s.url, { id: c.AccessKeyId, secret: c.AccessKeySecret }, 'ListAccessTokens')).status, 200);
  });

  it('the root key cannot be disabled or deleted', () => {
    for (const sub of ['disable', 'delete']) {
      try {
        execFileSync(process.execPath, [SMCD_BIN, 'keys', sub, s.root.id, '--data-dir', s.dir], { encoding: 'utf8', stdio: 'pipe' });
        assert.fail('expected a refusal');
      } catch (err: any) {
        assert.equal(err.status, 1);
        assert.match(err.stderr, /root key cannot be disabled or deleted/);
      }
    }
  });
});
