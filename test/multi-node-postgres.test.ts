import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { newAccessKeyId, newAccessKeySecret } from '../src/crypto/ids.ts';
import { POSTGRES_MIGRATIONS } from '../src/store/postgres/migrations.ts';
import { PostgresStore } from '../src/store/postgres/postgres-store.ts';
import { createTestDatabase, postgresSkipReason, queryDatabase, type TestDatabase } from './helpers/postgres.ts';
import { type ServerProcess, startServerProcess } from './helpers/process-server.ts';
import { tempDir } from './helpers/server.ts';
import { type Creds, callV1, encodeForm, v1Params } from './helpers/sign.ts';

/**
 * Several `smcd serve` processes on one PostgreSQL database behave as one service
 * (issue 4): one schema, exactly-once imports, nonces and codes shared by every node,
 * and one master key.
 */

const masterKey = () => randomBytes(32).toString('hex');

function nodeEnv(key: string, root: Creds): NodeJS.ProcessEnv {
  return { SMCD_MASTER_KEY: key, SMCD_ROOT_ACCESS_KEY_ID: root.id, SMCD_ROOT_ACCESS_KEY_SECRET: root.secret };
}

function startNode(db: TestDatabase, dirs: string[], env: NodeJS.ProcessEnv): Promise<ServerProcess> {
  const dir = tempDir('smcd-node-');
  dirs.push(dir);
  return startServerProcess(['--database', db.url, '--data-dir', dir, '--db-pool-size', '8'], env, 60_000);
}

async function createCode(url: string, root: Creds, params: Record<string, string>): Promise<Creds> {
  const r = await callV1(url, root, 'CreateAccessToken', params);
  assert.equal(r.status, 200, r.text);
  return { id: r.body.AccessTokenId, secret: r.body.AccessTokenCode };
}

describe('two smcd nodes on one PostgreSQL database', { skip: await postgresSkipReason() }, () => {
  const root: Creds = { id: newAccessKeyId(), secret: newAccessKeySecret() };
  const key = masterKey();
  const dirs: string[] = [];
  let db: TestDatabase;
  let nodes: ServerProcess[] = [];

  before(async () => {
    db = await createTestDatabase();
    // Both at the same moment, on an empty database.
    nodes = await Promise.all([startNode(db, dirs, nodeEnv(key, root)), startNode(db, dirs, nodeEnv(key, root))]);
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await db?.drop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('started together on an empty database, both serve one schema', async () => {
    for (const [i, node] of nodes.entries()) {
      const code = await createCode(node.url, root, { Name: `node${i}` });
      const other = nodes[1 - i]!;
      const listed = await callV1(other.url, root, 'ListAccessTokens', { 'AccessTokenId.1': code.id });
      assert.equal(listed.status, 200, listed.text);
      assert.equal(listed.body.TotalCount, 1);
    }
    const versions = await queryDatabase(db.url, 'SELECT version, COUNT(*)::int AS n FROM schema_migrations GROUP BY version ORDER BY version');
    assert.deepEqual(
      versions,
      POSTGRES_MIGRATIONS.map((_, i) => ({ version: i + 1, n: 1 })),
    );
    const roots = await queryDatabase(db.url, 'SELECT id FROM access_keys WHERE is_root = 1');
    assert.deepEqual(roots, [{ id: root.id }]);
  });

  it('120 concurrent imports of distinct machines across both nodes use a Count=20 code exactly 20 times', async () => {
    const code = await createCode(nodes[0]!.url, root, { Name: 'race', Count: '20' });
    const results = await Promise.all(
      Array.from({ length: 120 }, (_, i) =>
        callV1(nodes[i % 2]!.url, code, 'ImportSourceServer', { MachineId: `machine-${i}-${randomUUID()}`, Hostname: `host-${i}` }),
      ),
    );
    const ok = results.filter((r) => r.status === 200);
    const exceeded = results.filter((r) => r.status === 403 && r.body?.Code === 'AccessToken.CountExceeded');
    assert.equal(ok.length, 20, JSON.stringify(results.filter((r) => r.status !== 200 && r.status !== 403).map((r) => r.text)));
    assert.equal(exceeded.length, 100);
    assert.equal(new Set(ok.map((r) => r.body.SourceId)).size, 20);
    for (const node of nodes) {
      const listed = await callV1(node.url, root, 'ListAccessTokens', { 'AccessTokenId.1': code.id });
      assert.equal(listed.body.AccessTokens.AccessToken[0].RegisteredCount, '20');
      const sources = await callV1(node.url, root, 'DescribeSourceServers', { AccessTokenId: code.id, PageSize: '50' });
      assert.equal(sources.status, 200, sources.text);
      assert.equal(sources.body.TotalCount, 20);
    }
  });

  it('a nonce accepted by one node is refused when the same request is replayed on the other', async () => {
    const query = encodeForm(v1Params(root, 'ListAccessTokens', { PageSize: '1' }, { nonce: randomUUID() }));
    const first = await fetch(`${nodes[0]!.url}/?${query}`);
    assert.equal(first.status, 200, await first.text());
    const replay = await fetch(`${nodes[1]!.url}/?${query}`);
    const body = await replay.json();
    assert.equal(replay.status, 400);
    assert.equal(body.Code, 'SignatureNonceUsed');
    // And on the first node too, of course.
    const again = await fetch(`${nodes[0]!.url}/?${query}`);
    assert.equal((await again.json()).Code, 'SignatureNonceUsed');
  });

  it('a code created on one node is listed and importable on the other', async () => {
    const code = await createCode(nodes[0]!.url, root, { Name: 'crossnode', Count: '2' });
    const listed = await callV1(nodes[1]!.url, root, 'ListAccessTokens', { Name: 'crossnode' });
    assert.equal(listed.status, 200, listed.text);
    assert.deepEqual(
      listed.body.AccessTokens.AccessToken.map((t: { AccessTokenId: string }) => t.AccessTokenId),
      [code.id],
    );
    const imported = await callV1(nodes[1]!.url, code, 'ImportSourceServer', { MachineId: `m-${randomUUID()}`, Hostname: 'web-1' });
    assert.equal(imported.status, 200, imported.text);
    assert.match(imported.body.SourceId, /^s-[a-z0-9]{20}$/);
    const counted = await callV1(nodes[0]!.url, root, 'ListAccessTokens', { 'AccessTokenId.1': code.id });
    assert.equal(counted.body.AccessTokens.AccessToken[0].RegisteredCount, '1');
  });

  it('a ClientToken sent to both nodes at once creates one code', async () => {
    const clientToken = randomUUID();
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => callV1(nodes[i % 2]!.url, root, 'CreateAccessToken', { Name: 'idem', ClientToken: clientToken })),
    );
    for (const r of results) assert.equal(r.status, 200, r.text);
    assert.equal(new Set(results.map((r) => r.body.AccessTokenId)).size, 1);
    assert.equal(results.filter((r) => r.body.AccessTokenCode !== '').length, 1, 'the code is returned once');
  });

  it('a node with a different master key refuses to start, with a clear message', async () => {
    const err = await startNode(db, dirs, nodeEnv(masterKey(), root)).then(
      (n) => {
        nodes.push(n);
        return undefined;
      },
      (e: Error) => e,
    );
    assert.ok(err, 'the node started');
    const exit = /exited with (\d+)/.exec(err.message);
    assert.ok(exit, err.message);
    assert.notEqual(Number(exit[1]), 0);
    assert.match(err.message, /master key .* is not the one this database was written with/);
    // The nodes holding the right key are unaffected.
    const listed = await callV1(nodes[0]!.url, root, 'ListAccessTokens', {});
    assert.equal(listed.status, 200, listed.text);
  });
});

describe('PostgreSQL migrations under a crowd of nodes', { skip: await postgresSkipReason() }, () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase();
  });
  after(() => db?.drop());

  it('eight stores opening an empty database at once apply each step once', async () => {
    const stores = await Promise.all(Array.from({ length: 8 }, () => PostgresStore.open(db.url, { poolSize: 1, timeoutMs: 15_000 })));
    try {
      const versions = await queryDatabase(db.url, 'SELECT version FROM schema_migrations ORDER BY version');
      assert.deepEqual(
        versions.map((v) => v.version),
        POSTGRES_MIGRATIONS.map((_, i) => i + 1),
      );
      for (const s of stores) assert.equal(await s.putMetaIfAbsent('k', 'v'), 'v');
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });
});
