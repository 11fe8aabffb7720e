import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { encodeForm, v1Params } from './helpers/sign.ts';

/**
 * GET from a chosen loopback source address, so two "clients" can be told apart; with
 * `forwardedFor`, as a trusted proxy would send it for a client further away (IPv6 included).
 */
function getFrom(localAddress: string, port: number, query: string, forwardedFor?: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const headers = forwardedFor ? { 'x-forwarded-for': forwardedFor } : {};
    const req = request({ host: '127.0.0.1', port, path: `/?${query}`, localAddress, agent: false, headers }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('failed authentications are throttled per client address', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({ authFailureLimit: 5, authFailureWindowMs: 60_000 });
  });
  after(() => s.close());

  const good = () => encodeForm(v1Params(s.root, 'ListAccessTokens', {}));
  const bad = () => encodeForm(v1Params({ id: s.root.id, secret: 'guess' }, 'ListAccessTokens', {}));
  const guessCode = () => encodeForm(v1Params({ id: 'at-aaaaaaaaaaaaaaaaaaaa', secret: 'guess' }, 'ImportSourceServer', { MachineId: 'm' }));

  it('after the limit, every request from that address gets 429 Throttling.User, even a correct one', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await getFrom('127.0.0.2', s.port, i % 2 ? bad() : guessCode())).status, i % 2 ? 400 : 404);
    // The limit is "more than 5": the 6th failure still answers normally, then the address is blocked.
    assert.equal((await getFrom('127.0.0.2', s.port, bad())).body.Code, 'SignatureDoesNotMatch');
    const blocked = await getFrom('127.0.0.2', s.port, good());
    assert.equal(blocked.status, 429);
    assert.equal(blocked.body.Code, 'Throttling.User');
  });

  it('another address is not touched, and successful traffic is never limited', async () => {
    for (let i = 0; i < 30; i++) assert.equal((await getFrom('127.0.0.3', s.port, good())).status, 200);
    assert.equal((await getFrom('127.0.0.2', s.port, good())).status, 429);
  });
});

describe('failed authentications are counted per IPv6 /64, not per address', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({ authFailureLimit: 5, authFailureWindowMs: 60_000, trustProxy: '127.0.0.1' });
  });
  after(() => s.close());
  const good = () => encodeForm(v1Params(s.root, 'ListAccessTokens', {}));
  const bad = () => encodeForm(v1Params({ id: s.root.id, secret: 'guess' }, 'ListAccessTokens', {}));

  it('six addresses of one /64 share one count: the whole /64 is refused, a neighbouring /64 is not', async () => {
    for (const host of ['a', 'b', 'c', 'd', 'e', 'f']) {
      assert.equal((await getFrom('127.0.0.1', s.port, bad(), `2001:db8:1:2::${host}`)).body.Code, 'SignatureDoesNotMatch');
    }
    for (const other of ['2001:db8:1:2:ffff:ffff:ffff:1', '2001:0db8:0001:0002::9']) {
      const r = await getFrom('127.0.0.1', s.port, good(), other);
      assert.equal(r.status, 429, other);
      assert.equal(r.body.Code, 'Throttling.User');
    }
    assert.equal((await getFrom('127.0.0.1', s.port, good(), '2001:db8:1:3::1')).status, 200);
  });

  it('IPv4 addresses are counted one by one: six addresses with one failure each are not refused', async () => {
    for (let i = 1; i <= 6; i++) assert.equal((await getFrom('127.0.0.1', s.port, bad(), `203.0.113.${i}`)).status, 400);
    for (let i = 1; i <= 6; i++) assert.equal((await getFrom('127.0.0.1', s.port, good(), `203.0.113.${i}`)).status, 200);
  });
});

describe('wrong signatures are also counted per AccessKeyId; its rightful users stay served', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({ authFailureLimit: 1_000_000, keyFailureLimit: 20, authFailureWindowMs: 60_000 });
  });
  after(() => s.close());
  const good = () => encodeForm(v1Params(s.root, 'ListAccessTokens', {}));
  const bad = () => encodeForm(v1Params({ id: s.root.id, secret: 'guess' }, 'ListAccessTokens', {}));

  it('guesses rotated over 30 addresses lock the key id for new addresses, not for an address that signed correctly', async () => {
    assert.equal((await getFrom('127.0.2.1', s.port, good())).status, 200, 'the owner works from 127.0.2.1');
    for (let i = 1; i <= 30; i++) {
      const r = await getFrom(`127.0.3.${i}`, s.port, bad());
      assert.equal(r.body.Code, i <= 21 ? 'SignatureDoesNotMatch' : 'Throttling.User', `guess ${i}`);
    }
    const stranger = await getFrom('127.0.4.1', s.port, good());
    assert.equal(stranger.status, 429, 'a correct signature from an unknown address is refused while the key id is locked');
    assert.equal(stranger.body.Code, 'Throttling.User');
    assert.equal((await getFrom('127.0.2.1', s.port, good())).status, 200, 'the rightful owner is not locked out');
    // Other key ids are not affected.
    const code = await getFrom('127.0.2.1', s.port, encodeForm(v1Params(s.root, 'CreateAccessToken', {})));
    assert.equal(code.status, 200);
    const creds = { id: code.body.AccessTokenId, secret: code.body.AccessTokenCode };
    const imported = await getFrom('127.0.4.1', s.port, encodeForm(v1Params(creds, 'ImportSourceServer', { MachineId: 'throttle-1' })));
    assert.equal(imported.status, 200);
  });
});
