import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { readRootCredentials } from '../src/bootstrap.ts';
import { queryDatabase } from './helpers/postgres.ts';
import { SMCD_BIN, startServerProcess } from './helpers/process-server.ts';
import { tempDir } from './helpers/server.ts';
import { callV1, callV3 } from './helpers/sign.ts';
import { openTestDatabase, STORE_KINDS, storeSkipReason } from './helpers/stores.ts';

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

/** Every row of every smcd table, as text: what PostgreSQL holds for us. */
async function dumpPostgres(url: string): Promise<Buffer> {
  const tables = await queryDatabase(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'");
  assert.ok(tables.length >= 6);
  const parts: string[] = [];
  for (const t of tables) {
    for (const row of await queryDatabase(url, `SELECT row_to_json(x)::text AS j FROM ${String(t.tablename)} x`)) parts.push(String(row.j));
  }
  return Buffer.from(parts.join('\n'));
}

for (const kind of STORE_KINDS)
  describe(`secrets never appear in plain text in the data, the data directory or the logs (${kind})`, { skip: await storeSkipReason(kind) }, () => {
    const dir = tempDir();
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('after the whole lifecycle, no code, access key secret, source key secret or webhook secret is found byte for byte', async () => {
      const db = await openTestDatabase(kind, dir);
      const server = await startServerProcess(['--data-dir', dir, '--database', db.url, '--log-level', 'debug']);
      const c = readRootCredentials(dir)!;
      const root = { id: c.AccessKeyId, secret: c.AccessKeySecret };
      const secrets: string[] = [];
      try {
        // An extra access key, made with the local admin command.
        const key = JSON.parse(
          execFileSync(process.execPath, [SMCD_BIN, 'keys', 'create', '--data-dir', dir, '--database', db.url, '--output', 'json'], {
            encoding: 'utf8',
          }),
        );
        secrets.push(key.AccessKeySecret);
        const operator = { id: key.AccessKeyId, secret: key.AccessKeySecret };
        // A webhook: its signing secret is sealed like the others; its deliveries (to a closed port) and the audit events are scanned too.
        const hook = await callV1(server.url, root, 'CreateWebhook', {
          Url: 'http://127.0.0.1:9/never',
          'EventType.1': 'AccessToken.Create',
          'EventType.2': 'SourceServer.Import',
        });
        assert.equal(hook.status, 200, hook.text);
        secrets.push(hook.body.WebhookSecret);
        for (let i = 0; i < 5; i++) {
          const created = await (i % 2 ? callV3 : callV1)(server.url, i % 3 ? root : operator, 'CreateAccessToken', { Name: `scan${i}`, Count: '3' });
          assert.equal(created.status, 200, created.text);
          const code = { id: created.body.AccessTokenId, secret: created.body.AccessTokenCode };
          secrets.push(code.secret);
          // Import a source with the code, heartbeat with its key, then a failed import with a wrong code.
          const imported = await callV1(server.url, code, 'ImportSourceServer', { MachineId: `m-${i}`, Hostname: `host${i}` });
          assert.equal(imported.status, 200, imported.text);
          secrets.push(imported.body.SourceKeySecret);
          const beat = await callV1(
            server.url,
            { id: imported.body.SourceKeyId, secret: imported.body.SourceKeySecret },
            'ReportSourceServerHeartbeat',
            { SourceId: imported.body.SourceId },
          );
          assert.equal(beat.status, 200, beat.text);
          // A re-import rotates the source secret: the new one must not leak either.
          const nonce = randomUUID();
          const again = await callV1(
            server.url,
            code,
            'ImportSourceServer',
            {
              MachineId: `m-${i}`,
              SourceKeyId: imported.body.SourceKeyId,
              SourceProof: createHmac('sha256', imported.body.SourceKeySecret).update(`m-${i}\n${nonce}`).digest('hex'),
            },
            { nonce },
          );
          assert.equal(again.status, 200, again.text);
          secrets.push(again.body.SourceKeySecret);
          assert.equal(
            (await callV1(server.url, { id: code.id, secret: code.secret.toLowerCase() }, 'ImportSourceServer', { MachineId: 'x' })).body.Code,
            'SignatureDoesNotMatch',
          );
          if (i === 1) assert.equal((await callV1(server.url, root, 'DisableAccessToken', { AccessTokenId: code.id })).status, 200);
          if (i === 2) assert.equal((await callV1(server.url, root, 'DeleteAccessToken', { AccessTokenId: code.id })).status, 200);
          if (i === 3) assert.equal((await callV1(server.url, root, 'DeleteSourceServer', { SourceId: imported.body.SourceId })).status, 200);
        }
        execFileSync(process.execPath, [SMCD_BIN, 'keys', 'disable', key.AccessKeyId, '--data-dir', dir, '--database', db.url]);
      } finally {
        assert.equal(await server.stop(), 0);
      }
      secrets.push(root.secret);
      assert.equal(new Set(secrets).size, secrets.length);

      const logs = Buffer.from(server.output.join('\n'));
      assert.ok(logs.length > 1000, 'the server logged its requests');
      let scanned = logs.length;
      for (const secret of secrets) assert.equal(logs.indexOf(secret), -1, 'a secret appears in the server log');
      for (const file of filesUnder(dir)) {
        // The root credentials file exists to hand the root secret to the operator, mode 0600.
        if (file.endsWith('root-credentials.json')) {
          assert.equal(statSync(file).mode & 0o777, 0o600);
          continue;
        }
        const bytes = readFileSync(file);
        scanned += bytes.length;
        for (const secret of secrets) assert.equal(bytes.indexOf(secret), -1, `a secret appears in ${file}`);
      }
      assert.equal(statSync(join(dir, 'master.key')).mode & 0o777, 0o600);
      if (kind === 'postgres') {
        const rows = await dumpPostgres(db.url);
        assert.ok(rows.includes('v2.'), 'sealed values are in the dump');
        scanned += rows.length;
        for (const secret of secrets) assert.equal(rows.indexOf(secret), -1, 'a secret appears in a PostgreSQL row');
      }
      await db.drop();
      assert.ok(scanned > 10_000, `scanned ${scanned} bytes`);
      console.log(`${kind}: ${secrets.length} secrets looked for in ${scanned} bytes of logs and data; none found`);
    });
  });
