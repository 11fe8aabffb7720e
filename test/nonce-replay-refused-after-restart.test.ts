import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { readRootCredentials } from '../src/bootstrap.ts';
import { startServerProcess } from './helpers/process-server.ts';
import { tempDir } from './helpers/server.ts';
import { encodeForm, v1Params } from './helpers/sign.ts';

describe('nonces are persisted: a replay is refused after a restart', () => {
  const dir = tempDir();
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`a request replayed after the server was stopped with ${signal} gets SignatureNonceUsed`, async () => {
      let server = await startServerProcess(['--data-dir', dir]);
      const c = readRootCredentials(dir)!;
      const query = encodeForm(v1Params({ id: c.AccessKeyId, secret: c.AccessKeySecret }, 'CreateAccessToken', { Name: `replay_${signal}` }));
      const first = await fetch(`${server.url}/?${query}`);
      assert.equal(first.status, 200);
      await server.stop(signal);
      server = await startServerProcess(['--data-dir', dir]);
      try {
        const replay = await fetch(`${server.url}/?${query}`);
        const body = await replay.json();
        assert.equal(replay.status, 400);
        assert.equal(body.Code, 'SignatureNonceUsed');
      } finally {
        await server.stop();
      }
    });
  }
});
