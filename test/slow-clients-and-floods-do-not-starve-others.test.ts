import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { rawHttp } from './helpers/raw-http.ts';
import { startTestServer, type TestServer, tempDir } from './helpers/server.ts';
import { callV1 } from './helpers/sign.ts';
import { openTestDatabase, STORE_KINDS, storeSkipReason } from './helpers/stores.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function openSlowloris(port: number): { socket: Socket; closed: Promise<string> } {
  const socket = connect(port, '127.0.0.1');
  let received = '';
  socket.on('data', (d) => (received += d));
  socket.on('error', () => {});
  const closed = new Promise<string>((resolve) => socket.on('close', () => resolve(received)));
  // Headers one byte at a time, never finished.
  const partial = 'GET /?Action=ListAccessTokens HTTP/1.1\r\nHost: x\r\nX-Slow: ';
  let i = 0;
  const timer = setInterval(() => {
    if (socket.destroyed) return clearInterval(timer);
    const ch = partial[i % partial.length] ?? 'a';
    socket.write(ch === '\r' ? 'a' : ch);
    i++;
  }, 200);
  socket.on('close', () => clearInterval(timer));
  return { socket, closed };
}

for (const kind of STORE_KINDS)
  describe(`slow clients and floods do not starve other clients (${kind})`, { skip: await storeSkipReason(kind) }, () => {
    let s: TestServer;
    let db: { url: string; drop(): Promise<void> };
    const dir = tempDir();
    before(async () => {
      db = await openTestDatabase(kind, dir);
      s = await startTestServer({
        dir,
        database: db.url,
        headersTimeoutMs: 2_000,
        requestTimeoutMs: 3_000,
        maxConnections: 200,
        maxRequestsPerSocket: 5,
      });
    });
    after(async () => {
      await s.close();
      await db.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('100 slowloris connections: others are served meanwhile, and the slow ones are cut off with 408', async () => {
      const slow = Array.from({ length: 100 }, () => openSlowloris(s.port));
      await sleep(300);
      for (let i = 0; i < 20; i++) assert.equal((await callV1(s.url, s.root, 'ListAccessTokens')).status, 200);
      const answers = await Promise.all(slow.map((c) => c.closed));
      // Every slow connection was closed by the server, with an SMC-style 408.
      assert.equal(answers.filter((a) => a.startsWith('HTTP/1.1 408') && a.includes('"Code":"RequestTimeout"')).length, 100);
    });

    it('a body that never finishes is cut off with 408 and others are served meanwhile', async () => {
      const pending = rawHttp(
        s.port,
        'POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 500\r\n\r\nAction=',
        { timeoutMs: 20_000 },
      );
      assert.equal((await callV1(s.url, s.root, 'ListAccessTokens', {}, { method: 'POST' })).status, 200);
      const r = await pending;
      assert.equal(r.status, 408);
      assert.equal(r.json.Code, 'RequestTimeout');
    });

    it('connections beyond the cap are refused while the cap holds, and served again after', async () => {
      const held = Array.from({ length: 200 }, () => openSlowloris(s.port));
      await sleep(500);
      const extra = await new Promise<string>((resolve) => {
        const sock = connect(s.port, '127.0.0.1', () => sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
        let got = '';
        sock.on('data', (d) => (got += d));
        sock.on('error', () => resolve(`error:${got}`));
        sock.on('close', () => resolve(got));
      });
      assert.ok(!extra.startsWith('HTTP/1.1 200'), `a connection over the cap was served: ${extra.slice(0, 40)}`);
      for (const c of held) c.socket.destroy();
      await sleep(200);
      assert.equal((await fetch(`${s.url}/healthz`)).status, 200);
    });

    it('a keep-alive connection is closed after its request budget', async () => {
      const socket = connect(s.port, '127.0.0.1');
      let received = '';
      socket.on('data', (d) => (received += d));
      const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      for (let i = 0; i < 8; i++) socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      await closed;
      assert.equal(received.match(/HTTP\/1\.1 200/g)?.length, 5);
    });
  });
