import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Gauge } from 'prom-client';
import { readRootCredentials } from '../src/bootstrap.ts';
import { type ServerProcess, startServerProcess } from './helpers/process-server.ts';
import { rawHttp } from './helpers/raw-http.ts';
import { startTestServer, type TestServer, tempDir } from './helpers/server.ts';
import { callV1 } from './helpers/sign.ts';

/** Every route the server answers, and a path it does not know. */
const ROUTES = ['/', '/console/', '/console/app.js', '/metrics', '/healthz', '/readyz', '/agent/smcd-agent.sh', '/agent/info.json', '/nope'];

/** What a hostile client puts after a route: malformed escapes, NUL, overlong UTF-8, traversal, raw garbage. */
const SUFFIXES = [
  '%',
  '%c0',
  '%E0%A4%A',
  '%zz',
  '%00',
  'a%00b',
  '%C0%AF',
  '%C0%AE%C0%AE%C0%AF',
  '..%2F..%2F..%2Fetc%2Fpasswd',
  '%2e%2e/%2e%2e/etc/passwd',
  '../../../../etc/passwd',
  '..\\..\\windows',
  '%EF%BF%BF%ED%A0%80',
  '\xff\xfe\x80',
  '?%',
  '?a=%c0&b',
  '//',
  `${'A'.repeat(20_000)}`,
];

const requestLine = (method: string, path: string) =>
  Buffer.from(`${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`, 'latin1');

describe('no request can end the process (API.md 5.1)', () => {
  let proc: ServerProcess;
  let dir: string;
  before(async () => {
    dir = tempDir();
    proc = await startServerProcess(['--data-dir', dir, '--auth-failure-limit', '1000000']);
  });
  after(async () => {
    await proc.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('malformed escapes, NUL, overlong UTF-8, traversal and garbage on every route get an answer below 500, and the same process serves on', async () => {
    const port = Number(new URL(proc.url).port);
    const pid = proc.child.pid;
    let sent = 0;
    for (const route of ROUTES) {
      for (const suffix of SUFFIXES) {
        for (const method of ['GET', 'POST', 'HEAD', 'DELETE']) {
          const path = route === '/' ? `/${suffix}` : `${route}${suffix}`;
          const r = await rawHttp(port, requestLine(method, path), { timeoutMs: 5_000, head: method === 'HEAD' });
          sent++;
          assert.ok(r.status >= 200 && r.status < 500, `${method} ${JSON.stringify(path.slice(0, 60))} answered ${r.status}`);
          assert.ok(!/at .+\(.+:\d+:\d+\)/.test(r.body), `${method} ${path.slice(0, 60)}: a stack trace reached the client`);
          assert.ok(!r.body.includes('root:x:0:0'), `${method} ${path.slice(0, 60)} served a file from outside`);
        }
      }
    }
    assert.equal(proc.child.exitCode, null, 'the process is still running');
    assert.equal(proc.child.pid, pid);
    assert.equal((await fetch(`${proc.url}/healthz`)).status, 200);
    const c = readRootCredentials(dir)!;
    const signed = await callV1(proc.url, { id: c.AccessKeyId, secret: c.AccessKeySecret }, 'ListAccessTokens', {});
    assert.equal(signed.status, 200, signed.text);
    assert.ok(sent > 600);
  });

  it('a console path with a bad escape is 400 with a RequestId, not a crash', async () => {
    for (const bad of ['%', '%c0', '%E0%A4%A']) {
      const r = await fetch(`${proc.url}/console/${bad}`);
      assert.equal(r.status, 400, bad);
      assert.match(r.headers.get('x-acs-request-id') ?? '', /^[0-9A-F-]{36}$/);
      assert.match(await r.text(), /malformed percent-encoding.*RequestId/);
    }
  });
});

describe('an exception inside a side-path handler is answered 500 and logged with its RequestId', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer();
  });
  after(() => s.close());

  it('/metrics with a failing collector: 500 text with a RequestId, logged, and the server serves on', async () => {
    new Gauge({
      name: 'test_broken_gauge',
      help: 'throws when collected',
      registers: [s.server.services.metrics.registry],
      collect() {
        throw new Error('collector exploded');
      },
    });
    const r = await fetch(`${s.url}/metrics`);
    assert.equal(r.status, 500);
    const requestId = r.headers.get('x-acs-request-id') ?? '';
    assert.match(requestId, /^[0-9A-F-]{36}$/);
    const text = await r.text();
    assert.match(text, /internal error \(RequestId [0-9A-F-]{36}\)/);
    assert.ok(!text.includes('collector exploded'), 'the cause is not shown to the client');
    const logged = s.logs.map((l) => JSON.parse(l)).find((l) => l.requestId === requestId);
    assert.ok(logged, 'the failure is logged with the RequestId');
    assert.equal(logged.msg, 'internal error');
    assert.match(JSON.stringify(logged.err), /collector exploded/);
    assert.equal((await fetch(`${s.url}/healthz`)).status, 200);
    assert.equal((await callV1(s.url, s.root, 'ListAccessTokens', {})).status, 200);
  });
});
