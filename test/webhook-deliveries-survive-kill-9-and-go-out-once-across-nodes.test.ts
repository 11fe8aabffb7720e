import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { newAccessKeyId, newAccessKeySecret } from '../src/crypto/ids.ts';
import { createTestDatabase, postgresSkipReason } from './helpers/postgres.ts';
import { type ServerProcess, startServerProcess } from './helpers/process-server.ts';
import { tempDir } from './helpers/server.ts';
import { type Creds, callV1 } from './helpers/sign.ts';
import { openTestDatabase, STORE_KINDS, storeSkipReason } from './helpers/stores.ts';
import { waitFor } from './helpers/wait.ts';
import { sleep, startReceiver, verifySignature } from './helpers/webhook-receiver.ts';

/** Retries 50 ms apart, doubling: the whole test runs in seconds (SMCD_WEBHOOK_BACKOFF_MS is for tests only). */
const FAST = { SMCD_WEBHOOK_BACKOFF_MS: '50' };

/** Deliveries are retried with backoff across restarts: up to two minutes. */
const DELIVERY_WAIT_MS = 120_000;

async function createWebhook(url: string, root: Creds, target: string, types: string[]) {
  const params: Record<string, string> = { Url: target };
  types.forEach((t, i) => {
    params[`EventType.${i + 1}`] = t;
  });
  const r = await callV1(url, root, 'CreateWebhook', params);
  assert.equal(r.status, 200, r.text);
  return { id: r.body.WebhookId as string, secret: r.body.WebhookSecret as string };
}

for (const kind of STORE_KINDS) {
  describe(`webhook deliveries survive kill -9 of smcd (${kind})`, { skip: await storeSkipReason(kind) }, () => {
    const dir = tempDir();
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('events acknowledged before SIGKILL are all delivered after the restart, in order', async () => {
      let up = false;
      const receiver = await startReceiver(() => (up ? 200 : 503));
      const db = await openTestDatabase(kind, dir);
      const root = { id: newAccessKeyId(), secret: newAccessKeySecret() };
      const env = { ...FAST, SMCD_ROOT_ACCESS_KEY_ID: root.id, SMCD_ROOT_ACCESS_KEY_SECRET: root.secret };
      const args = ['--data-dir', dir, '--database', db.url];
      let server = await startServerProcess(args, env);
      try {
        const hook = await createWebhook(server.url, root, `${receiver.url}/hook`, ['AccessToken.Create']);
        const codes: string[] = [];
        for (let i = 0; i < 5; i++) {
          const r = await callV1(server.url, root, 'CreateAccessToken', { Name: `killed${i}` }, { method: 'POST' });
          assert.equal(r.status, 200, r.text);
          codes.push(r.body.AccessTokenId);
        }
        await waitFor('a first attempt', () => receiver.received.length > 0, DELIVERY_WAIT_MS);
        server.child.kill('SIGKILL');
        await server.stop();
        up = true;
        const attemptsBefore = receiver.received.length;

        server = await startServerProcess(args, env);
        await waitFor('five deliveries after the restart', () => receiver.received.filter((r) => r.answered === 200).length === 5, DELIVERY_WAIT_MS);
        const delivered = receiver.received.filter((r) => r.answered === 200);
        assert.deepEqual(
          delivered.map((r) => r.event.ResourceId),
          codes,
          'each acknowledged create is delivered once, in the order of the creates',
        );
        assert.ok(
          delivered.every((r) => verifySignature(r.signature, r.body, hook.secret) !== undefined),
          'signed with the secret, sealed in the store across the restart',
        );
        assert.ok(
          receiver.received.slice(0, attemptsBefore).every((r) => r.event.ResourceId === codes[0]),
          'the first event blocked the rest',
        );
        const listed = await callV1(server.url, root, 'DescribeWebhookDeliveries', { WebhookId: hook.id, Status: 'delivered' });
        assert.equal(listed.body.TotalCount, 5);
      } finally {
        await server.stop();
        await receiver.close();
        await db.drop();
      }
    });
  });
}

describe('two PostgreSQL nodes deliver each event exactly once', { skip: await postgresSkipReason() }, () => {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('every event is attempted by one node: one failure, then one success, in the webhook order', async () => {
    // Each event's first attempt fails, so retries are spread over both nodes' dispatchers.
    const receiver = await startReceiver((_path, received) => {
      const last = received[received.length - 1];
      return last === undefined || last.answered === 200 ? 500 : 200;
    });
    const db = await createTestDatabase();
    const root = { id: newAccessKeyId(), secret: newAccessKeySecret() };
    const env = {
      ...FAST,
      SMCD_MASTER_KEY: randomBytes(32).toString('hex'),
      SMCD_ROOT_ACCESS_KEY_ID: root.id,
      SMCD_ROOT_ACCESS_KEY_SECRET: root.secret,
    };
    const start = () => {
      const d = tempDir('smcd-node-');
      dirs.push(d);
      return startServerProcess(['--database', db.url, '--data-dir', d], env, 60_000);
    };
    const nodes: ServerProcess[] = await Promise.all([start(), start()]);
    try {
      const hook = await createWebhook(nodes[0]!.url, root, `${receiver.url}/two`, ['AccessToken.Create', 'SourceServer.Import']);
      // Concurrent changes on both nodes.
      await Promise.all(
        Array.from({ length: 10 }, async (_, i) => {
          const node = nodes[i % 2]!;
          const r = await callV1(node.url, root, 'CreateAccessToken', { Count: '1' }, { method: 'POST' });
          assert.equal(r.status, 200, r.text);
          const code = { id: r.body.AccessTokenId, secret: r.body.AccessTokenCode };
          const imported = await callV1(nodes[(i + 1) % 2]!.url, code, 'ImportSourceServer', { MachineId: `two-${i}` }, { method: 'POST' });
          assert.equal(imported.status, 200, imported.text);
        }),
      );
      await waitFor('twenty deliveries', () => receiver.received.filter((r) => r.answered === 200).length >= 20, DELIVERY_WAIT_MS);
      await sleep(500);
      const byEvent = new Map<string, number[]>();
      for (const r of receiver.received) byEvent.set(r.event.EventId, [...(byEvent.get(r.event.EventId) ?? []), r.answered]);
      assert.equal(byEvent.size, 20);
      for (const [id, answers] of byEvent) assert.deepEqual(answers, [500, 200], `event ${id}: one failed attempt, then one delivery`);
      const listed = await callV1(nodes[1]!.url, root, 'DescribeWebhookDeliveries', { WebhookId: hook.id, PageSize: '50' });
      const order = listed.body.Deliveries.Delivery.map((d: { EventId: string }) => d.EventId).reverse();
      assert.deepEqual(
        receiver.received.filter((r) => r.answered === 200).map((r) => r.event.EventId),
        order,
        'delivered in the webhook order, one at a time',
      );
      assert.ok(listed.body.Deliveries.Delivery.every((d: { Attempts: number; Status: string }) => d.Attempts === 2 && d.Status === 'delivered'));
    } finally {
      await Promise.all(nodes.map((n) => n.stop()));
      await receiver.close();
      await db.drop();
    }
  });
});
