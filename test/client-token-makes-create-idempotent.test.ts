import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { SMCD_BIN } from './helpers/process-server.ts';
import { startTestServer, type TestServer, testClock } from './helpers/server.ts';
import { callV1 } from './helpers/sign.ts';

describe('ClientToken makes CreateAccessToken idempotent without revealing the code twice', () => {
  let s: TestServer;
  const clock = testClock();
  const ts = () => `${new Date(clock()).toISOString().slice(0, 19)}Z`;
  before(async () => {
    s = await startTestServer({ clock });
  });
  after(() => s.close());

  it('the same ClientToken and parameters return the same id and an empty code', async () => {
    const first = await callV1(s.url, s.root, 'CreateAccessToken', { Name: 'idem', Count: '4', ClientToken: 'ct-1' }, { timestamp: ts() });
    assert.equal(first.status, 200);
    assert.match(first.body.AccessTokenCode, /^[A-Za-z0-9]{32}$/);
    const again = await callV1(s.url, s.root, 'CreateAccessToken', { Name: 'idem', Count: '4', ClientToken: 'ct-1' }, { timestamp: ts() });
    assert.equal(again.status, 200);
    assert.equal(again.body.AccessTokenId, first.body.AccessTokenId);
    assert.equal(again.body.AccessTokenCode, '');
    assert.equal((await callV1(s.url, s.root, 'ListAccessTokens', { Name: 'idem' }, { timestamp: ts() })).body.TotalCount, 1);
  });

  it('the same ClientToken with other parameters: 409 IdempotentParameterMismatch', async () => {
    await callV1(s.url, s.root, 'CreateAccessToken', { Name: 'idem2', ClientToken: 'ct-2' }, { timestamp: ts() });
    const r = await callV1(s.url, s.root, 'CreateAccessToken', { Name: 'idem2', Count: '5', ClientToken: 'ct-2' }, { timestamp: ts() });
    assert.equal(r.status, 409);
    assert.equal(r.body.Code, 'IdempotentParameterMismatch');
  });

  it('a ClientToken is scoped to the access key that used it', async () => {
    const other = JSON.parse(
      execFileSync(process.execPath, [SMCD_BIN, 'keys', 'create', '--data-dir', s.dir, '--output', 'json'], { encoding: 'utf8' }),
    );
    const mine = await callV1(s.url, s.root, 'CreateAccessToken', { ClientToken: 'shared' }, { timestamp: ts() });
    const theirs = await callV1(
      s.url,
      { id: other.AccessKeyId, secret: other.AccessKeySecret },
      'CreateAccessToken',
      { ClientToken: 'shared' },
      { timestamp: ts() },
    );
    assert.notEqual(mine.body.AccessTokenId, theirs.body.AccessTokenId);
    assert.match(theirs.body.AccessTokenCode, /^[A-Za-z0-9]{32}$/);
  });

  it('after 24 hours the ClientToken creates a new code', async () => {
    const first = await callV1(s.url, s.root, 'CreateAccessToken', { ClientToken: 'ct-3' }, { timestamp: ts() });
    clock.advance(24 * 3_600_000 + 1000);
    const later = await callV1(s.url, s.root, 'CreateAccessToken', { ClientToken: 'ct-3' }, { timestamp: ts() });
    assert.notEqual(later.body.AccessTokenId, first.body.AccessTokenId);
    assert.match(later.body.AccessTokenCode, /^[A-Za-z0-9]{32}$/);
  });
});
