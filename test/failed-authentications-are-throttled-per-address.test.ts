import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { encodeForm, v1Params } from './helpers/sign.ts';
import { type TestServer, startTestServer } from './helpers/server.ts';

/** GET from a chosen loopback source address, so two "clients" can be told apart. */
function getFrom(localAddress: string, port: number, query: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: `/?${query}`, localAddress, agent: false }, (res) => {
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
