import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer, tempDir, testClock } from './helpers/server.ts';
import { type ApiResponse, type Creds, callV1, REQUEST_ID } from './helpers/sign.ts';
import { openTestDatabase, STORE_KINDS, storeSkipReason } from './helpers/stores.ts';
import { type Received, sleep, startReceiver, verifySignature } from './helpers/webhook-receiver.ts';

const SECOND = 1_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

interface Delivery {
  EventId: string;
  EventType: string;
  Attempts: number;
  LastAttemptTime: string;
  LastStatusCode: number;
  Status: string;
}

for (const kind of STORE_KINDS) {
  describe(`webhooks deliver signed events in order, with retries (${kind})`, { skip: await storeSkipReason(kind) }, () => {
    let s: TestServer;
    let db: { url: string; drop(): Promise<void> };
    let dir: string;
    let receiver: Awaited<ReturnType<typeof startReceiver>>;
    // The dispatcher runs on this clock: retries become due when the test moves it.
    const clock = testClock(Date.UTC(2033, 2, 1, 8));
    const ts = () => `${new Date(clock()).toISOString().slice(0, 19)}Z`;
    const call = (creds: Creds, action: string, params: Record<string, string> = {}) => callV1(s.url, creds, action, params, { timestamp: ts() });
    const ok = async (creds: Creds, action: string, params: Record<string, string> = {}): Promise<ApiResponse> => {
      const r = await call(creds, action, params);
      assert.equal(r.status, 200, `${action}: ${r.text}`);
      return r;
    };
    const createWebhook = async (path: string, types: string[], extra: Record<string, string> = {}) => {
      const params: Record<string, string> = { Url: `${receiver.url}${path}`, ...extra };
      types.forEach((t, i) => {
        params[`EventType.${i + 1}`] = t;
      });
      const r = await ok(s.root, 'CreateWebhook', params);
      return { id: r.body.WebhookId as string, secret: r.body.WebhookSecret as string };
    };
    const deliveries = async (webhookId: string, params: Record<string, string> = {}) =>
      (await ok(s.root, 'DescribeWebhookDeliveries', { WebhookId: webhookId, PageSize: '50', ...params })).body;
    /** Moves the clock by `step` at a time, letting the dispatcher poll in between, until `done`. */
    const until = async (done: () => Promise<boolean> | boolean, step: number, what: string) => {
      for (let i = 0; i < 2_000; i++) {
        if (await done()) return;
        clock.advance(step);
        await sleep(15);
      }
      assert.fail(`never happened: ${what}`);
    };
    const at = (path: string) => receiver.received.filter((r) => r.path === path);
    const createCode = async (params: Record<string, string> = {}): Promise<Creds> => {
      const r = await ok(s.root, 'CreateAccessToken', params);
      return { id: r.body.AccessTokenId, secret: r.body.AccessTokenCode };
    };

    before(async () => {
      dir = tempDir();
      db = await openTestDatabase(kind, dir);
      receiver = await startReceiver((path, received) => {
        if (path === '/flaky') return received.filter((r) => r.path === '/flaky').length < 3 ? 500 : 204;
        if (path === '/down') return 503;
        if (path === '/hang') return 0;
        return 200;
      });
      s = await startTestServer({
        dir,
        database: db.url,
        clock,
        sweepIntervalMs: 20,
        webhooks: { pollMs: 10, timeoutMs: 300 },
      });
    });
    after(async () => {
      await s?.close();
      await receiver?.close();
      await db?.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('validation: every operation refuses what it does not accept, with SMC-style errors', async () => {
      const cases: Array<[string, Record<string, string>, number, string]> = [
        ['CreateWebhook', { 'EventType.1': 'AccessToken.Create' }, 400, 'MissingUrl'],
        ['CreateWebhook', { Url: 'ftp://127.0.0.1/x', 'EventType.1': 'AccessToken.Create' }, 400, 'InvalidParameter.Url'],
        ['CreateWebhook', { Url: 'not a url', 'EventType.1': 'AccessToken.Create' }, 400, 'InvalidParameter.Url'],
        ['CreateWebhook', { Url: 'http://user:pw@127.0.0.1/', 'EventType.1': 'AccessToken.Create' }, 400, 'InvalidParameter.Url'],
        ['CreateWebhook', { Url: 'http://127.0.0.1/' }, 400, 'MissingEventType'],
        ['CreateWebhook', { Url: 'http://127.0.0.1/', 'EventType.1': 'AccessToken.Burn' }, 400, 'InvalidParameter.EventType'],
        [
          'CreateWebhook',
          { Url: 'http://127.0.0.1/', 'EventType.1': 'AccessToken.ExpiringSoon', ExpiringSoonDays: '0' },
          400,
          'InvalidParameter.ExpiringSoonDays',
        ],
        [
          'CreateWebhook',
          { Url: 'http://127.0.0.1/', 'EventType.1': 'AccessToken.ExpiringSoon', ExpiringSoonDays: '31' },
          400,
          'InvalidParameter.ExpiringSoonDays',
        ],
        ['DeleteWebhook', {}, 400, 'MissingWebhookId'],
        ['DeleteWebhook', { WebhookId: 'wh-00000000000000000000' }, 404, 'InvalidWebhookId.NotFound'],
        ['DescribeWebhookDeliveries', {}, 400, 'MissingWebhookId'],
        ['DescribeWebhookDeliveries', { WebhookId: 'wh-00000000000000000000' }, 404, 'InvalidWebhookId.NotFound'],
      ];
      const hook = await createWebhook('/ok', ['AccessKey.Create']);
      cases.push(
        ['DescribeWebhookDeliveries', { WebhookId: hook.id, Status: 'lost' }, 400, 'InvalidParameter.Status'],
        ['DescribeWebhookDeliveries', { WebhookId: hook.id, PageSize: '51' }, 400, 'InvalidParameter.PageSize'],
        ['DescribeWebhookDeliveries', { WebhookId: hook.id, PageNumber: '0' }, 400, 'InvalidParameter.PageNumber'],
      );
      for (const [action, params, status, code] of cases) {
        const r = await call(s.root, action, params);
        assert.equal(r.status, status, `${action} ${JSON.stringify(params)}: ${r.text}`);
        assert.equal(r.body.Code, code, `${action} ${JSON.stringify(params)}`);
        assert.match(r.body.RequestId, REQUEST_ID);
      }
      await ok(s.root, 'DeleteWebhook', { WebhookId: hook.id });
      assert.equal((await call(s.root, 'DeleteWebhook', { WebhookId: hook.id })).body.Code, 'InvalidWebhookId.NotFound', 'deleted');
    });

    it('CreateWebhook returns the id and the secret once; ListWebhooks never shows the secret', async () => {
      const hook = await createWebhook('/ok', ['AccessToken.Create', 'SourceServer.Import'], { ExpiringSoonDays: '7' });
      assert.match(hook.id, /^wh-[a-z0-9]{20}$/);
      assert.match(hook.secret, /^[A-Za-z0-9]{32}$/);
      const listed = await ok(s.root, 'ListWebhooks');
      assert.ok(!listed.text.includes(hook.secret), 'the secret is never listed');
      const item = listed.body.Webhooks.Webhook.find((w: { WebhookId: string }) => w.WebhookId === hook.id);
      assert.deepEqual(item, {
        WebhookId: hook.id,
        Url: `${receiver.url}/ok`,
        EventTypes: { EventType: ['AccessToken.Create', 'SourceServer.Import'] },
        ExpiringSoonDays: 7,
        CreationTime: ts(),
      });
      await ok(s.root, 'DeleteWebhook', { WebhookId: hook.id });
      const after = await ok(s.root, 'ListWebhooks');
      assert.ok(!after.body.Webhooks.Webhook.some((w: { WebhookId: string }) => w.WebhookId === hook.id));
    });

    it('a failing receiver is retried with doubling backoff; later events wait; every delivery is signed', async () => {
      const hook = await createWebhook('/flaky', ['AccessToken.Create', 'AccessToken.Disable']);
      const x = await createCode({ Name: 'first' });
      await ok(s.root, 'DisableAccessToken', { AccessTokenId: x.id });
      const y = await createCode({ Name: 'second' });
      await until(() => at('/flaky').filter((r) => r.answered === 204).length === 3, 2 * SECOND, 'three events delivered');

      const events = (await ok(s.root, 'DescribeAuditEvents', { 'EventType.1': 'AccessToken.Create', 'EventType.2': 'AccessToken.Disable' })).body
        .Events.Event;
      const idOf = (type: string, resourceId: string) =>
        events.find((e: { EventType: string; ResourceId: string }) => e.EventType === type && e.ResourceId === resourceId).EventId;
      const order = [idOf('AccessToken.Create', x.id), idOf('AccessToken.Disable', x.id), idOf('AccessToken.Create', y.id)];
      const flaky = at('/flaky');
      assert.deepEqual(
        flaky.map((r) => r.event.EventId),
        [order[0], order[0], order[0], order[0], order[1], order[2]],
        'the first event is attempted four times before the later ones go out, in event order',
      );
      // Each attempt is signed with the secret over its timestamp and body.
      const times = flaky.map((r) => verifySignature(r.signature, r.body, hook.secret));
      assert.ok(
        times.every((t) => t !== undefined),
        'every signature verifies',
      );
      assert.equal(verifySignature(flaky[0]!.signature, flaky[0]!.body, 'x'.repeat(32)), undefined, 'another secret does not verify');
      // Backoff: 10 s, then 20 s, then 40 s at least (up to 20 % more).
      const [t0, t1, t2, t3] = times as number[];
      assert.ok(t1! - t0! >= 10 && t2! - t1! >= 20 && t3! - t2! >= 40, `attempts at ${times.join(', ')}`);
      const body = flaky[4]!.event;
      assert.deepEqual(Object.keys(body), ['EventId', 'EventType', 'EventTime', 'ResourceType', 'ResourceId', 'Detail']);
      assert.deepEqual(
        { type: body.EventType, resourceType: body.ResourceType, resourceId: body.ResourceId, detail: JSON.parse(body.Detail) },
        { type: 'AccessToken.Disable', resourceType: 'accesstoken', resourceId: x.id, detail: { Disabled: true } },
      );

      const listed = await deliveries(hook.id);
      assert.equal(listed.TotalCount, 3);
      const items: Delivery[] = listed.Deliveries.Delivery;
      assert.deepEqual(
        items.map((d) => [d.EventId, d.Status, d.Attempts, d.LastStatusCode]),
        [
          [order[2], 'delivered', 1, 204],
          [order[1], 'delivered', 1, 204],
          [order[0], 'delivered', 4, 204],
        ],
        'newest first, with attempts and the last status',
      );
      assert.equal(items[2]!.EventType, 'AccessToken.Create');
      assert.match(items[2]!.LastAttemptTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      assert.equal((await deliveries(hook.id, { Status: 'pending' })).TotalCount, 0);
      const paged = await deliveries(hook.id, { PageSize: '1', PageNumber: '2' });
      assert.deepEqual([paged.TotalCount, paged.PageNumber, paged.PageSize, paged.Deliveries.Delivery[0].EventId], [3, 2, 1, order[1]]);
      await ok(s.root, 'DeleteWebhook', { WebhookId: hook.id });
    });

    it('no answer within the timeout counts as a failed attempt with LastStatusCode 0', async () => {
      const hook = await createWebhook('/hang', ['AccessToken.Delete']);
      const code = await createCode();
      await ok(s.root, 'DeleteAccessToken', { AccessTokenId: code.id });
      await until(async () => (await deliveries(hook.id)).Deliveries.Delivery[0]?.Attempts === 1, 0, 'one attempt');
      const [d] = (await deliveries(hook.id)).Deliveries.Delivery as Delivery[];
      assert.deepEqual([d!.Status, d!.LastStatusCode], ['pending', 0]);
      await ok(s.root, 'DeleteWebhook', { WebhookId: hook.id });
    });

    it('AccessToken.Exhausted is sent when a code gives its last use, not before', async () => {
      const hook = await createWebhook('/exhausted', ['AccessToken.Exhausted']);
      const two = await createCode({ Count: '2' });
      await ok(two, 'ImportSourceServer', { MachineId: 'wh-one-of-two' });
      const one = await createCode({ Count: '1' });
      await ok(one, 'ImportSourceServer', { MachineId: 'wh-one-of-one' });
      await until(() => at('/exhausted').length > 0, SECOND, 'an Exhausted delivery');
      assert.deepEqual(
        at('/exhausted').map((r) => [r.event.EventType, r.event.ResourceType, r.event.ResourceId]),
        [['AccessToken.Exhausted', 'accesstoken', one.id]],
      );
      await ok(s.root, 'DeleteWebhook', { WebhookId: hook.id });
    });

    it('AccessToken.ExpiringSoon is sent once per code, ExpiringSoonDays before it expires; not for a disabled code', async () => {
      // Disabled before the webhook exists, so that no sweep can see it open.
      const disabled = await createCode({ TimeToLiveInDays: '1' });
      await ok(s.root, 'DisableAccessToken', { AccessTokenId: disabled.id });
      const later = await createCode({ TimeToLiveInDays: '5' });
      const hook = await createWebhook('/expiring', ['AccessToken.ExpiringSoon'], { ExpiringSoonDays: '2' });
      const soon = await createCode({ TimeToLiveInDays: '1' });
      await until(() => at('/expiring').length >= 1, 0, 'the code expiring within 2 days is announced');
      assert.equal(at('/expiring').length, 1);
      assert.equal(at('/expiring')[0]!.event.ResourceId, soon.id);
      // Two days and a bit before `later` expires: nothing yet.
      clock.advance(3 * DAY - HOUR);
      await s.server.sweep();
      await sleep(100);
      assert.equal(at('/expiring').length, 1, 'not more than ExpiringSoonDays before');
      clock.advance(2 * HOUR);
      await until(() => at('/expiring').length === 2, 0, 'the second code is announced');
      const announced: Received = at('/expiring')[1]!;
      assert.equal(announced.event.ResourceId, later.id);
      assert.deepEqual(JSON.parse(announced.event.Detail), {
        ExpirationTime: `${new Date(Date.parse(ts()) - HOUR + 2 * DAY).toISOString().slice(0, 19)}Z`,
        ExpiringSoonDays: 2,
      });
      for (let i = 0; i < 5; i++) await s.server.sweep();
      await sleep(100);
      assert.equal((await deliveries(hook.id)).TotalCount, 2, 'once per code; never the disabled one');
      assert.ok(!at('/expiring').some((r) => r.event.ResourceId === disabled.id));
      await ok(s.root, 'DeleteWebhook', { WebhookId: hook.id });
    });

    it('a receiver that keeps failing is retried, at most an hour apart, for 24 hours, then the delivery is failed', async () => {
      const hook = await createWebhook('/down', ['SourceServer.Modify']);
      const code = await createCode();
      const imported = await ok(code, 'ImportSourceServer', { MachineId: 'wh-down' });
      await ok(s.root, 'ModifySourceServerAttribute', { SourceId: imported.body.SourceId, Description: 'to nobody' });
      await until(async () => (await deliveries(hook.id)).Deliveries.Delivery[0]?.Status === 'failed', 10 * 60 * SECOND, 'failed');
      const [d] = (await deliveries(hook.id)).Deliveries.Delivery as Delivery[];
      assert.equal(d!.LastStatusCode, 503);
      const times = at('/down').map((r) => verifySignature(r.signature, r.body, hook.secret)!);
      assert.equal(d!.Attempts, times.length);
      const gaps = times.slice(1).map((t, i) => t - times[i]!);
      assert.ok(
        gaps.every((g) => g >= 10),
        `gaps ${gaps.join(', ')}`,
      );
      assert.ok(
        gaps.slice(0, 8).every((g, i) => g >= 10 * 2 ** i),
        `doubling from 10 s: ${gaps.join(', ')}`,
      );
      // Capped at an hour: a whole day of attempts takes far more of them than doubling alone would.
      assert.ok(times.length >= 20, `${times.length} attempts`);
      // Given up once the next attempt would come more than 24 h after the first, an hour apart at most.
      const span = times[times.length - 1]! - times[0]!;
      assert.ok(span >= 23 * 3_600, `attempts spread over ${span} s`);
      assert.equal((await deliveries(hook.id, { Status: 'failed' })).TotalCount, 1);
    });
  });
}
