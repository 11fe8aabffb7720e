import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, get } from 'node:https';
import { connect as connectTcp, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect as connectTls, type PeerCertificate, type TLSSocket } from 'node:tls';
import RPCClient from '@alicloud/pop-core';
import { type ServerProcess, SMCD_BIN, startServerProcess } from './helpers/process-server.ts';
import { runProcess } from './helpers/run-process.ts';
import { tempDir } from './helpers/server.ts';

// CommonJS under ESM: the default export is nested once more.
const PopCore: any = (RPCClient as any).default ?? RPCClient;

const openssl = (dir: string, args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });

/** A test CA, and `<name>.pem`/`<name>-key.pem` signed by it for 127.0.0.1 and localhost with common name `name`. */
function makeCa(dir: string): void {
  openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca-key.pem']);
  openssl(dir, ['req', '-x509', '-new', '-key', 'ca-key.pem', '-days', '2', '-subj', '/CN=smcd test CA', '-out', 'ca.pem']);
}
function makeServerCert(dir: string, name: string): void {
  openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}-key.pem`]);
  openssl(dir, ['req', '-new', '-key', `${name}-key.pem`, '-subj', `/CN=${name}`, '-out', `${name}.csr`]);
  writeFileSync(join(dir, `${name}.ext`), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(
    dir,
    ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-set_serial', String(Date.now()), '-days', '2'].concat([
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.pem`,
    ]),
  );
}

/** The certificate a new TLS connection to `port` is shown. */
function peerCertificate(port: number, ca: Buffer): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket: TLSSocket = connectTls({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      const cert = socket.getPeerCertificate();
      socket.end();
      resolve(cert);
    });
    socket.once('error', reject);
  });
}

/** GET `path` through `agent`; the body, and the socket it came over. */
function getVia(agent: Agent, port: number, path: string): Promise<{ status: number; body: string; socket: TLSSocket }> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, agent }, (res) => {
      // Taken now: once the body has been read, a keep-alive socket goes back to the agent.
      const socket = res.socket as TLSSocket;
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, socket }));
    }).once('error', reject);
  });
}

async function waitForLine(server: ServerProcess, pattern: RegExp, from: number): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const line = server.output.slice(from).find((l) => pattern.test(l));
    if (line) return line;
    await sleep(50);
  }
  throw new Error(`no line matching ${pattern}:\n${server.output.join('\n')}`);
}

const sh = (command: string, env: Record<string, string>) => runProcess('/bin/sh', ['-c', command], { env: { ...process.env, ...env } });

describe('smcd serve --tls-cert/--tls-key serves HTTPS and reloads its certificate on SIGHUP', () => {
  let dir: string;
  let ca: Buffer;
  let server: ServerProcess;
  let port: number;
  let root: { id: string; secret: string };
  const certFile = () => join(dir, 'served.pem');
  const keyFile = () => join(dir, 'served-key.pem');
  const serve = (pair: 'one' | 'two') => {
    writeFileSync(certFile(), readFileSync(join(dir, `${pair}.pem`)));
    writeFileSync(keyFile(), readFileSync(join(dir, `${pair}-key.pem`)));
  };

  before(async () => {
    dir = tempDir('smcd-tls-');
    makeCa(dir);
    makeServerCert(dir, 'one');
    makeServerCert(dir, 'two');
    ca = readFileSync(join(dir, 'ca.pem'));
    serve('one');
    server = await startServerProcess(['--data-dir', join(dir, 'data'), '--tls-cert', certFile(), '--tls-key', keyFile()]);
    port = Number(new URL(server.url).port);
    const creds = JSON.parse(readFileSync(join(dir, 'data', 'root-credentials.json'), 'utf8'));
    root = { id: creds.AccessKeyId, secret: creds.AccessKeySecret };
  });
  after(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('announces an https:// address', () => {
    assert.equal(server.url, `https://127.0.0.1:${port}`);
  });

  it('@alicloud/pop-core creates and lists codes over https, trusting the test CA', async () => {
    const client = new PopCore({ accessKeyId: root.id, accessKeySecret: root.secret, endpoint: server.url, apiVersion: '2019-06-01' });
    const created: any = await client.request('CreateAccessToken', { Name: 'over_tls', Count: 2 }, { method: 'POST', ca });
    assert.match(created.AccessTokenId, /^at-/);
    const listed: any = await client.request('ListAccessTokens', { Name: 'over_tls' }, { method: 'GET', ca });
    assert.deepEqual(
      listed.AccessTokens.AccessToken.map((t: any) => t.AccessTokenId),
      [created.AccessTokenId],
    );
    await assert.rejects(
      new PopCore({ accessKeyId: root.id, accessKeySecret: root.secret, endpoint: server.url, apiVersion: '2019-06-01' }).request(
        'ListAccessTokens',
        {},
        { method: 'GET' },
      ),
      /self[- ]signed|unable to verify|certificate/i,
      'without the CA the certificate is not trusted',
    );
  });

  it('the one-line shell import works over https with SMCD_CA_FILE, and refuses without it', async () => {
    const client = new PopCore({ accessKeyId: root.id, accessKeySecret: root.secret, endpoint: server.url, apiVersion: '2019-06-01' });
    const code: any = await client.request('CreateAccessToken', { Name: 'shell_tls', Count: 5 }, { method: 'POST', ca });
    const script = await getVia(new Agent({ ca }), port, '/agent/smcd-agent.sh');
    assert.ok(script.body.includes(`served_endpoint='https://127.0.0.1:${port}'`), 'the served script points at https');
    const oneLiner = (caEnv: string) =>
      sh(`curl -fsSL --cacert "$CA" "$URL/agent/smcd-agent.sh" | ${caEnv} SMCD_CODE_ID="$ID" SMCD_CODE="$CODE" sh -s -- import`, {
        CA: join(dir, 'ca.pem'),
        URL: server.url,
        ID: code.AccessTokenId,
        CODE: code.AccessTokenCode,
        SMCD_NO_INSTALL: '1',
        SMCD_STATE_FILE: join(dir, `state-${caEnv ? 'ca' : 'none'}`),
        SMCD_MACHINE_ID: 'tls-test',
      });
    const untrusted = await oneLiner('');
    assert.notEqual(untrusted.code, 0, untrusted.stdout);
    assert.match(untrusted.stderr, /certificate could not be verified.*SMCD_CA_FILE/);
    const trusted = await oneLiner('SMCD_CA_FILE="$CA"');
    assert.equal(trusted.code, 0, trusted.stderr);
    assert.match(trusted.stdout, /^Import Source Server \[s-[a-z0-9]{20}\] Successfully!\n/);
  });

  it('plain http to the https port gets no API answer', async () => {
    const answer = await new Promise<string>((resolve) => {
      let data = '';
      const socket: Socket = connectTcp({ host: '127.0.0.1', port }, () => {
        socket.write('GET /?Action=ListAccessTokens HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      });
      socket.on('data', (c) => (data += c.toString('latin1')));
      socket.on('error', () => {});
      socket.on('close', () => resolve(data));
      socket.setTimeout(3_000, () => socket.destroy());
    });
    assert.ok(!answer.startsWith('HTTP/') && !answer.includes('RequestId'), `no HTTP answer: ${JSON.stringify(answer.slice(0, 80))}`);
  });

  it('SIGHUP switches new connections to the renewed certificate, keeps open ones, and a bad pair keeps the previous one', async () => {
    assert.equal((await peerCertificate(port, ca)).subject.CN, 'one');
    const agent = new Agent({ ca, keepAlive: true, maxSockets: 1 });
    const before = await getVia(agent, port, '/healthz');
    assert.equal(before.status, 200);

    serve('two');
    let mark = server.output.length;
    server.child.kill('SIGHUP');
    await waitForLine(server, /TLS certificate reloaded/, mark);
    assert.equal((await peerCertificate(port, ca)).subject.CN, 'two', 'a new connection sees the new certificate');
    const kept = await getVia(agent, port, '/healthz');
    assert.equal(kept.status, 200);
    assert.equal(kept.socket, before.socket, 'the keep-alive connection from before SIGHUP was reused');
    assert.equal(kept.socket.getPeerCertificate().subject.CN, 'one', 'and it keeps the certificate it was opened with');
    agent.destroy();

    writeFileSync(certFile(), 'not a certificate\n');
    writeFileSync(keyFile(), 'not a key\n');
    mark = server.output.length;
    server.child.kill('SIGHUP');
    const warning = JSON.parse(await waitForLine(server, /TLS reload refused/, mark));
    assert.equal(warning.level, 40);
    assert.ok(warning.msg.includes(certFile()), warning.msg);
    assert.equal(server.child.exitCode, null, 'still running');
    assert.equal((await peerCertificate(port, ca)).subject.CN, 'two', 'still serving the previous certificate');
    const after = await getVia(new Agent({ ca }), port, '/healthz');
    assert.equal(after.status, 200);
  });

  it('the per-address connection cap applies to TCP connections before any TLS handshake', async () => {
    const dataDir = join(dir, 'capped');
    serve('one');
    const capped = await startServerProcess([
      '--data-dir',
      dataDir,
      '--tls-cert',
      certFile(),
      '--tls-key',
      keyFile(),
      '--max-connections-per-address',
      '3',
    ]);
    try {
      const cport = Number(new URL(capped.url).port);
      const held = await Promise.all(
        Array.from(
          { length: 4 },
          () =>
            new Promise<{ socket: Socket; closed: () => boolean }>((resolve, reject) => {
              let closed = false;
              const socket = connectTcp({ host: '127.0.0.1', port: cport }, () => resolve({ socket, closed: () => closed }));
              socket.on('close', () => {
                closed = true;
              });
              socket.once('error', reject);
            }),
        ),
      );
      await sleep(300);
      assert.equal(held.filter((h) => h.closed()).length, 1, 'the fourth connection is closed at once');
      for (const h of held) h.socket.destroy();
      await sleep(100);
      assert.equal((await getVia(new Agent({ ca }), cport, '/healthz')).status, 200);
    } finally {
      await capped.stop();
    }
  });
});

describe('smcd serve refuses a TLS configuration it cannot use', () => {
  let dir: string;
  before(() => {
    dir = tempDir('smcd-tls-bad-');
    makeCa(dir);
    makeServerCert(dir, 'one');
    makeServerCert(dir, 'two');
    writeFileSync(join(dir, 'garbage.pem'), 'not a certificate\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const serve = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    runProcess(process.execPath, [SMCD_BIN, 'serve', '--port', '0', '--data-dir', join(dir, 'data'), ...args], {
      env: { ...process.env, SMCD_LOG_LEVEL: 'info', ...env },
    });

  /** Exit 1 with one fatal line that names `file`. */
  async function assertRefused(args: string[], file: string): Promise<void> {
    const run = await serve(args);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    const lines = `${run.stdout}${run.stderr}`.split('\n').filter(Boolean);
    assert.equal(lines.length, 1, lines.join('\n'));
    const line = JSON.parse(lines[0] ?? '');
    assert.equal(line.level, 60);
    assert.match(line.msg, /^smcd cannot start: /);
    assert.ok(line.msg.includes(file), `names ${file}: ${line.msg}`);
  }

  it('an unreadable certificate file: exit 1, one line naming it', async () => {
    const missing = join(dir, 'missing.pem');
    await assertRefused(['--tls-cert', missing, '--tls-key', join(dir, 'one-key.pem')], missing);
  });

  it('a file that holds no certificate: exit 1, one line naming it', async () => {
    const garbage = join(dir, 'garbage.pem');
    await assertRefused(['--tls-cert', garbage, '--tls-key', join(dir, 'one-key.pem')], garbage);
  });

  it("a key that is not the certificate's: exit 1, one line naming the key file", async () => {
    const wrongKey = join(dir, 'two-key.pem');
    await assertRefused(['--tls-cert', join(dir, 'one.pem'), '--tls-key', wrongKey], wrongKey);
  });

  it('only one of the two (flag or environment): exit 2', async () => {
    const flag = await serve(['--tls-cert', join(dir, 'one.pem')]);
    assert.equal(flag.code, 2, flag.stdout + flag.stderr);
    assert.match(flag.stderr, /--tls-cert and --tls-key/);
    const env = await serve([], { SMCD_TLS_KEY: join(dir, 'one-key.pem') });
    assert.equal(env.code, 2, env.stdout + env.stderr);
  });
});

describe('SIGHUP without TLS (systemctl reload) changes nothing and never ends the server', () => {
  it('the plain HTTP server stays up and says there was nothing to reload', async () => {
    const dir = tempDir('smcd-hup-');
    const server = await startServerProcess(['--data-dir', dir]);
    try {
      server.child.kill('SIGHUP');
      for (let i = 0; i < 40 && !server.output.some((l) => l.includes('nothing to reload')); i++) await sleep(50);
      assert.ok(
        server.output.some((l) => l.includes('SIGHUP: nothing to reload')),
        server.output.join('\n'),
      );
      assert.equal(server.child.exitCode, null);
      assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
    } finally {
      assert.equal(await server.stop(), 0);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
