import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from './helpers/server.ts';

describe('the console serves only the files it ships, and cannot be framed (API.md 5.1)', () => {
  let s: TestServer;
  let shipped: TestServer;
  let consoleDir: string;
  let outside: string;
  before(async () => {
    consoleDir = mkdtempSync(join(tmpdir(), 'smcd-console-'));
    outside = mkdtempSync(join(tmpdir(), 'smcd-outside-'));
    writeFileSync(join(consoleDir, 'index.html'), '<!doctype html><title>console</title>');
    writeFileSync(join(consoleDir, 'app.js'), 'export {};');
    writeFileSync(join(outside, 'secret.txt'), 'OUTSIDE-THE-CONSOLE');
    symlinkSync(join(outside, 'secret.txt'), join(consoleDir, 'linked.txt'));
    symlinkSync(outside, join(consoleDir, 'linked-dir'));
    mkdirSync(join(consoleDir, 'sub'));
    writeFileSync(join(consoleDir, 'sub', 'inner.js'), 'export {};');
    s = await startTestServer({ consoleDir });
    shipped = await startTestServer();
  });
  after(async () => {
    await s.close();
    await shipped.close();
    rmSync(consoleDir, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  it('a symlink placed in the console directory is not followed', async () => {
    for (const path of ['linked.txt', 'linked-dir/secret.txt', 'linked-dir%2Fsecret.txt']) {
      const r = await fetch(`${s.url}/console/${path}`);
      assert.equal(r.status, 404, path);
      assert.ok(!(await r.text()).includes('OUTSIDE-THE-CONSOLE'), path);
    }
  });

  it('subdirectories, traversal and files added after start are not served', async () => {
    writeFileSync(join(consoleDir, 'later.js'), 'export const later = 1;');
    for (const path of ['sub/inner.js', 'sub%2Finner.js', 'later.js', '..%2F..%2Fetc%2Fhostname', '%2e%2e/%2e%2e/etc/hostname']) {
      assert.equal((await fetch(`${s.url}/console/${path}`)).status, 404, path);
    }
  });

  it('the shipped files are served, each with CSP frame-ancestors none and X-Frame-Options DENY', async () => {
    for (const path of ['', 'index.html', 'app.js', 'app.css', 'sign-v1.js', 'nothing-here.js']) {
      const r = await fetch(`${shipped.url}/console/${path}`);
      assert.equal(r.status, path === 'nothing-here.js' ? 404 : 200, path);
      assert.match(r.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/, path);
      assert.equal(r.headers.get('x-frame-options'), 'DENY', path);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff', path);
    }
    assert.match((await fetch(`${shipped.url}/console/`)).headers.get('content-type') ?? '', /^text\/html/);
    assert.match((await fetch(`${shipped.url}/console/app.js`)).headers.get('content-type') ?? '', /^text\/javascript/);
  });
});
