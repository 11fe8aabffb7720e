import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { callV1 } from './helpers/sign.ts';

/** Opens a connection from `localAddress` and sends half a request, as a slow or hostile client would. */
function holdOpen(port: number, localAddress: string): Promise<{ socket: Socket; closed: () => boolean }> {
  return new Promise((resolve, reject) => {
    let closed = false;
    const socket = connect({ port, host: '127.0.0.1', localAddress });
    socket.on('error', () => {});
    socket.on('close', () => {
      closed = true;
    });
    socket.once('connect', () => {
      socket.write('POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nAction=');
      resolve({ socket, closed: () => closed });
    });
    socket.once('error', reject);
  });
}

describe('connections are capped per client address (API.md 5.1)', () => {
  let s: TestServer;
  before(async () => {
    // The default cap (256) and Node's own timeouts: nothing else limits the held connections.
    s = await startTestServer({ authFailureLimit: 1_000_000 });
  });
  after(() => s.close());

  it('300 held connections from 127.0.0.2: 256 stay, the rest are closed at once, and 127.0.0.1 keeps getting 200', async () => {
    const held = [];
    for (let i = 0; i < 300; i++) held.push(await holdOpen(s.port, '127.0.0.2'));
    await sleep(300);
    const closed = held.filter((h) => h.closed()).length;
    assert.equal(closed, 44, 'everything above 256 is closed');
    const results = await Promise.all(Array.from({ length: 20 }, () => callV1(s.url, s.root, 'ListAccessTokens', {})));
    assert.ok(
      results.every((r) => r.status === 200),
      JSON.stringify(results.map((r) => r.status)),
    );
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    assert.match(metrics, /^smcd_connections_refused_total 44$/m);

    // Closing some frees their places for that address again.
    for (const h of held.slice(0, 10)) h.socket.destroy();
    await sleep(200);
    const again = await holdOpen(s.port, '127.0.0.2');
    await sleep(200);
    assert.equal(again.closed(), false);
    for (const h of [...held, again]) h.socket.destroy();
  });
});

describe('--max-connections-per-address sets the cap; trusted proxies are exempt', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({ maxConnectionsPerAddress: 5, trustProxy: '127.0.0.3' });
  });
  after(() => s.close());

  it('a cap of 5 closes the sixth connection of an address, but not those of a listed proxy', async () => {
    const client = [];
    for (let i = 0; i < 6; i++) client.push(await holdOpen(s.port, '127.0.0.4'));
    const proxy = [];
    for (let i = 0; i < 12; i++) proxy.push(await holdOpen(s.port, '127.0.0.3'));
    await sleep(300);
    assert.deepEqual(
      client.map((h) => h.closed()),
      [false, false, false, false, false, true],
    );
    assert.ok(
      proxy.every((h) => !h.closed()),
      'a proxy carries many clients: it is not capped',
    );
    for (const h of [...client, ...proxy]) h.socket.destroy();
  });
});
