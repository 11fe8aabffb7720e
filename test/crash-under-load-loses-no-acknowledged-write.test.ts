import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { readRootCredentials } from '../src/bootstrap.ts';
import { startServerProcess } from './helpers/process-server.ts';
import { tempDir } from './helpers/server.ts';
import { type Creds, callV1 } from './helpers/sign.ts';
import { openTestDatabase, STORE_KINDS, storeSkipReason } from './helpers/stores.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const kind of STORE_KINDS) {
  describe(`kill -9 under concurrent create and import load loses no acknowledged write (${kind})`, { skip: await storeSkipReason(kind) }, () => {
    const dir = tempDir();
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('every acknowledged create is listed and imports; RegisteredCount matches acknowledged imports', async () => {
      const db = await openTestDatabase(kind, dir);
      const args = ['--data-dir', dir, '--database', db.url];
      let server = await startServerProcess(args);
      const c = readRootCredentials(dir)!;
      const root = { id: c.AccessKeyId, secret: c.AccessKeySecret };
      try {
        const pool: Creds[] = [];
        for (let i = 0; i < 10; i++) {
          const r = await callV1(server.url, root, 'CreateAccessToken', { Count: '1000' });
          pool.push({ id: r.body.AccessTokenId, secret: r.body.AccessTokenCode });
        }
        const createdAcked: Creds[] = [];
        const importAcked = new Map<string, string[]>(pool.map((p) => [p.id, []]));
        const importUnknown = new Map<string, number>(pool.map((p) => [p.id, 0]));
        let tried = 0;
        let unknown = 0;
        let stop = false;
        let machine = 0;
        const worker = async (w: number) => {
          while (!stop) {
            tried++;
            if (w % 2 === 0) {
              try {
                const r = await callV1(server.url, root, 'CreateAccessToken', { Count: '5' }, { method: 'POST' });
                if (r.status === 200) createdAcked.push({ id: r.body.AccessTokenId, secret: r.body.AccessTokenCode });
              } catch {
                unknown++;
              }
            } else {
              const code = pool[machine % pool.length]!;
              const id = `crash-${machine++}`;
              try {
                const r = await callV1(server.url, code, 'ImportSourceServer', { MachineId: id }, { method: 'POST' });
                if (r.status === 200) importAcked.get(code.id)!.push(r.body.SourceId);
              } catch {
                unknown++;
                importUnknown.set(code.id, importUnknown.get(code.id)! + 1);
              }
            }
          }
        };
        const workers = Array.from({ length: 12 }, (_, w) => worker(w));
        await sleep(1500);
        server.child.kill('SIGKILL');
        await server.stop();
        stop = true;
        await Promise.all(workers);
        const ackedImports = [...importAcked.values()].reduce((n, l) => n + l.length, 0);
        assert.ok(createdAcked.length > 10 && ackedImports > 10, `load ran: ${createdAcked.length} creates, ${ackedImports} imports acknowledged`);

        server = await startServerProcess(args);
        for (let i = 0; i < createdAcked.length; i += 50) {
          const batch = createdAcked.slice(i, i + 50);
          const params = Object.fromEntries(batch.map((b, j) => [`AccessTokenId.${j + 1}`, b.id]));
          const r = await callV1(server.url, root, 'ListAccessTokens', { ...params, PageSize: '50' });
          assert.equal(r.body.TotalCount, batch.length, 'every acknowledged create is listed');
        }
        for (const code of createdAcked.slice(0, 25)) {
          const r = await callV1(server.url, code, 'ImportSourceServer', { MachineId: `after-${code.id}` });
          assert.equal(r.status, 200, `an acknowledged code imports: ${r.text}`);
        }
        for (const code of pool) {
          const listed = await callV1(server.url, root, 'ListAccessTokens', { 'AccessTokenId.1': code.id });
          const registered = Number(listed.body.AccessTokens.AccessToken[0].RegisteredCount);
          const acked = importAcked.get(code.id)!.length;
          assert.ok(
            registered >= acked && registered <= acked + importUnknown.get(code.id)!,
            `${code.id}: RegisteredCount ${registered}, acknowledged ${acked}, in flight ${importUnknown.get(code.id)}`,
          );
          const sources = await callV1(server.url, root, 'DescribeSourceServers', { AccessTokenId: code.id, PageSize: '1' });
          assert.equal(sources.body.TotalCount, registered, 'one source per counted use: nothing counted twice');
        }
        console.log(
          `${kind}: ${tried} requests tried, ${createdAcked.length} creates and ${ackedImports} imports acknowledged, ${unknown} in flight at kill -9; all acknowledged writes survived`,
        );
      } finally {
        await server.stop();
        await db.drop();
      }
    });
  });
}
