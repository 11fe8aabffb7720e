import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { newAccessTokenId, newEventId, newSourceId, newSourceKeyId, newWebhookId } from '../../src/crypto/ids.ts';
import type { AccessTokenRecord } from '../../src/domain/access-token.ts';
import { type AuditEvent, type EventType, eventMaker } from '../../src/domain/audit-event.ts';
import { DAY_MS } from '../../src/domain/time.ts';
import type { WebhookRecord } from '../../src/domain/webhook.ts';
import { openStore } from '../../src/store/open-store.ts';
import type { Store } from '../../src/store/store.ts';
import { tempDir } from '../helpers/server.ts';
import { openTestDatabase, STORE_KINDS, storeSkipReason } from '../helpers/stores.ts';

/**
 * The audit and webhook members of the Store interface, driven directly on both stores:
 * events exist exactly when their change does, the sweeps record each transition once even
 * when two nodes run them at once, the queue follows subscriptions, and leases are exclusive.
 */

const T0 = Date.UTC(2031, 3, 1);
const actor = { keyId: 'LTAIactor', clientIp: '192.0.2.1', requestId: 'REQ' };
const event = (type: EventType, resourceId: string, time = T0) => eventMaker(newEventId, actor, time)(type, resourceId, { Test: true });

function token(overrides: Partial<AccessTokenRecord> = {}): AccessTokenRecord {
  const createdAt = overrides.createdAt ?? T0;
  const ttl = overrides.timeToLiveInDays ?? 30;
  return {
    id: newAccessTokenId(),
    codeSealed: 'sealed',
    name: 'n',
    description: '',
    count: 10,
    registeredCount: 0,
    timeToLiveInDays: ttl,
    createdAt,
    expiresAt: createdAt + ttl * DAY_MS,
    disabled: false,
    ipAddressRange: '',
    createdBy: 'LTAIcreator',
    requireApproval: false,
    ...overrides,
  };
}

function webhook(types: EventType[], days = 3): WebhookRecord {
  return { id: newWebhookId(), url: 'http://127.0.0.1:9/', eventTypes: types, expiringSoonDays: days, secretSealed: 'sealed-hook', createdAt: T0 };
}

async function importedSource(store: Store, tokenId: string, machineId: string, now = T0): Promise<string> {
  const r = await store.importSource({
    tokenId,
    machineId,
    now,
    clientIp: '192.0.2.1',
    refusal: () => null,
    ownsSource: () => true,
    fields: {
      name: null,
      description: null,
      hostname: machineId,
      platform: '',
      architecture: '',
      kernelLevel: null,
      agentVersion: '',
      systemDiskSize: null,
      dataDisks: [],
      systemInfo: '{}',
    },
    newSourceId: newSourceId(),
    newKeyId: newSourceKeyId(),
    sealKey: () => 'sealed-key',
  });
  assert.equal(r.outcome, 'imported');
  return r.outcome === 'imported' ? r.sourceId : '';
}

for (const kind of STORE_KINDS) {
  describe(`the ${kind} store records audit events and queues webhook deliveries`, { skip: await storeSkipReason(kind) }, () => {
    let dir: string;
    let db: { url: string; drop(): Promise<void> };
    let store: Store;
    /** Another node on the same database (PostgreSQL); SQLite serves one process, so the same store. */
    let other: Store;

    before(async () => {
      dir = tempDir('smcd-store-');
      db = await openTestDatabase(kind, dir);
      store = await openStore(db.url, { poolSize: 8, timeoutMs: 15_000 });
      other = kind === 'postgres' ? await openStore(db.url, { poolSize: 8, timeoutMs: 15_000 }) : store;
    });
    after(async () => {
      if (other !== store) await other?.close();
      await store?.close();
      await db?.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('an event is written with its change, and only when the change happened', async () => {
      const t = token();
      await store.createAccessToken(t, undefined, { event: event('AccessToken.Create', t.id) });
      assert.equal(await store.disableAccessToken(t.id, event('AccessToken.Disable', t.id)), true);
      assert.equal(await store.disableAccessToken('at-none', event('AccessToken.Disable', 'at-none')), false);
      assert.equal(await store.deleteSource('s-none', event('SourceServer.Delete', 's-none')), false);
      assert.equal(await store.modifySource('s-none', { name: 'x' }, event('SourceServer.Modify', 's-none')), false);
      assert.equal(await store.setAccessKeyEnabled('LTAInone', false, event('AccessKey.Disable', 'LTAInone')), false);
      const mine = await store.describeEvents({ resourceId: t.id, limit: 10 });
      assert.deepEqual(
        mine.map((e) => e.type),
        ['AccessToken.Disable', 'AccessToken.Create'],
        'newest first',
      );
      assert.ok(mine[0]!.seq > mine[1]!.seq);
      assert.deepEqual(
        { ...mine[1]!, seq: 0 },
        { ...(await store.describeEvents({ resourceId: t.id, types: ['AccessToken.Create'], limit: 1 }))[0]!, seq: 0 },
      );
      for (const none of ['at-none', 's-none', 'LTAInone']) assert.deepEqual(await store.describeEvents({ resourceId: none, limit: 10 }), []);
      assert.deepEqual(await store.describeEvents({ resourceId: t.id, beforeSeq: mine[1]!.seq, limit: 10 }), []);
    });

    it('an import records what its events callback makes, a refusal too, in the same transaction', async () => {
      const t = token({ count: 1 });
      await store.createAccessToken(t);
      const seen: Array<[string, boolean]> = [];
      const request = (machineId: string) => ({
        tokenId: t.id,
        machineId,
        now: T0,
        clientIp: '192.0.2.1',
        refusal: () => null,
        ownsSource: () => true,
        fields: {
          name: null,
          description: null,
          hostname: '',
          platform: '',
          architecture: '',
          kernelLevel: null,
          agentVersion: '',
          systemDiskSize: null,
          dataDisks: [],
          systemInfo: '{}',
        },
        newSourceId: newSourceId(),
        newKeyId: newSourceKeyId(),
        sealKey: () => 'sealed',
        events: (outcome: { outcome: string }, exhausted: boolean): AuditEvent[] => {
          seen.push([outcome.outcome, exhausted]);
          return [event(outcome.outcome === 'refused' ? 'SourceServer.ImportRefused' : 'AccessToken.Exhausted', t.id)];
        },
      });
      await store.importSource(request('q-1'));
      await store.importSource(request('q-2'));
      assert.deepEqual(seen, [
        ['imported', true],
        ['refused', false],
      ]);
      assert.deepEqual(
        (await store.describeEvents({ resourceId: t.id, limit: 10 })).map((e) => e.type),
        ['SourceServer.ImportRefused', 'AccessToken.Exhausted'],
      );
    });

    it('filters by time, and purgeExpired drops events (and deliveries) older than the retention', async () => {
      const hook = webhook(['AccessToken.Delete']);
      await store.createWebhook(hook);
      const old = token();
      const recent = token();
      await store.createAccessToken(old);
      await store.createAccessToken(recent);
      await store.deleteAccessToken(old.id, event('AccessToken.Delete', old.id, T0 - 400 * DAY_MS));
      await store.deleteAccessToken(recent.id, event('AccessToken.Delete', recent.id, T0 - 10 * DAY_MS));
      const inRange = await store.describeEvents({
        types: ['AccessToken.Delete'],
        startTime: T0 - 500 * DAY_MS,
        endTime: T0 - 300 * DAY_MS,
        limit: 10,
      });
      assert.deepEqual(
        inRange.map((e) => e.resourceId),
        [old.id],
      );
      assert.equal((await store.describeDeliveries({ webhookId: hook.id, offset: 0, limit: 10 })).total, 2);
      await store.purgeExpired(T0, T0 - 365 * DAY_MS);
      assert.deepEqual(await store.describeEvents({ resourceId: old.id, limit: 10 }), []);
      assert.equal((await store.describeEvents({ resourceId: recent.id, limit: 10 })).length, 1);
      const left = await store.describeDeliveries({ webhookId: hook.id, offset: 0, limit: 10 });
      assert.deepEqual(
        left.items.map((d) => d.event.resourceId),
        [recent.id],
      );
      await store.deleteWebhook(hook.id);
    });

    it('markOffline marks at most its limit, the longest silent first; the next calls mark the rest, each once', async () => {
      const base = T0 + 100 * DAY_MS;
      const offline = (sourceId: string) => event('SourceServer.Offline', sourceId);
      // Whatever earlier tests left silent is marked first, so only this test's sources remain.
      while ((await store.markOffline(base, offline, 1000)) > 0) {
        /* drain */
      }
      const t = token({ count: 20 });
      await store.createAccessToken(t);
      const ids = [];
      for (let i = 0; i < 3; i++) ids.push(await importedSource(store, t.id, `lim-${t.id}-${i}`, base + i));
      const since = base + 10;
      assert.equal(await store.markOffline(since, offline, 2), 2);
      const first = await store.describeEvents({ types: ['SourceServer.Offline'], limit: 100 });
      assert.deepEqual(
        ids.map((id) => first.filter((e) => e.resourceId === id).length),
        [1, 1, 0],
        'the two longest silent',
      );
      assert.equal(await store.markOffline(since, offline, 2), 1);
      assert.equal(await store.markOffline(since, offline, 2), 0);
      const all = await store.describeEvents({ types: ['SourceServer.Offline'], limit: 100 });
      assert.deepEqual(
        ids.map((id) => all.filter((e) => e.resourceId === id).length),
        [1, 1, 1],
      );
    });

    it('markOffline records each silent source once, also with two nodes sweeping at once; a beat brings it back once', async () => {
      const t = token({ count: 20 });
      await store.createAccessToken(t);
      const silent = [await importedSource(store, t.id, `off-${t.id}-1`, T0), await importedSource(store, t.id, `off-${t.id}-2`, T0)];
      const live = await importedSource(store, t.id, `off-${t.id}-3`, T0 + 10 * DAY_MS);
      const since = T0 + 5 * DAY_MS;
      const offline = (sourceId: string) => event('SourceServer.Offline', sourceId);
      const counts = await Promise.all([
        store.markOffline(since, offline, 100),
        other.markOffline(since, offline, 100),
        store.markOffline(since, offline, 100),
      ]);
      const marked = await store.describeEvents({ types: ['SourceServer.Offline'], limit: 100 });
      for (const id of silent) assert.equal(marked.filter((e) => e.resourceId === id).length, 1, 'once per source');
      assert.equal(marked.filter((e) => e.resourceId === live).length, 0);
      assert.ok(counts.reduce((a, b) => a + b, 0) >= silent.length);
      assert.equal(await store.markOffline(since, offline, 100), 0, 'nothing left to mark');

      const online = (beat: { sourceId: string }) => event('SourceServer.Online', beat.sourceId);
      await store.recordHeartbeats(
        [
          { sourceId: silent[0]!, at: T0 + 11 * DAY_MS },
          { sourceId: live, at: T0 + 11 * DAY_MS },
        ],
        online,
      );
      await store.recordHeartbeats([{ sourceId: silent[0]!, at: T0 + 11 * DAY_MS + 1 }], online);
      const back = await store.describeEvents({ types: ['SourceServer.Online'], limit: 100 });
      assert.deepEqual(
        back.filter((e) => [...silent, live].includes(e.resourceId)).map((e) => e.resourceId),
        [silent[0]],
        'only the offline one, once',
      );
    });

    it('the queue follows subscriptions and positions; a lease is held by one owner at a time', async () => {
      const creates = webhook(['AccessToken.Create']);
      const deletes = webhook(['AccessToken.Delete', 'AccessToken.Create']);
      await store.createWebhook(creates);
      await store.createWebhook(deletes);
      const a = token();
      const b = token();
      await store.createAccessToken(a, undefined, { event: event('AccessToken.Create', a.id) });
      await store.createAccessToken(b, undefined, { event: event('AccessToken.Create', b.id) });
      await store.deleteAccessToken(a.id, event('AccessToken.Delete', a.id));
      const queued = async (id: string) => (await store.describeDeliveries({ webhookId: id, offset: 0, limit: 10 })).items;
      assert.deepEqual(
        (await queued(creates.id)).map((d) => [d.event.type, d.event.resourceId, d.status]),
        [
          ['AccessToken.Create', b.id, 'pending'],
          ['AccessToken.Create', a.id, 'pending'],
        ],
      );
      assert.deepEqual(
        (await queued(deletes.id)).map((d) => d.event.type),
        ['AccessToken.Delete', 'AccessToken.Create', 'AccessToken.Create'],
      );
      const now = T0 + DAY_MS;
      assert.ok((await store.webhooksDue(now, 'node-a')).includes(creates.id));
      const [first, second] = await Promise.all([
        store.leaseWebhook(creates.id, 'node-a', now, now + 60_000),
        other.leaseWebhook(creates.id, 'node-b', now, now + 60_000),
      ]);
      assert.equal([first, second].filter(Boolean).length, 1, 'one of two racing owners gets the lease');
      const [owner, loser] = first ? ['node-a', 'node-b'] : ['node-b', 'node-a'];
      assert.equal(await store.leaseWebhook(creates.id, loser, now + 1, now + 60_000), undefined);
      assert.ok(!(await store.webhooksDue(now, loser)).includes(creates.id), 'not due for another owner while leased');
      assert.ok(await store.leaseWebhook(creates.id, owner, now + 1, now + 60_000), 'the owner renews');
      const head = (await store.nextDelivery(creates.id))!;
      assert.equal(head.event.resourceId, a.id, 'the oldest first');
      await store.recordAttempt(creates.id, head.position, {
        attempts: 1,
        firstAttemptAt: now,
        at: now,
        statusCode: 500,
        status: 'pending',
        nextAttemptAt: now + 10_000,
      });
      assert.ok(!(await store.webhooksDue(now + 5_000, owner)).includes(creates.id), 'its head waits for its retry time');
      assert.ok((await store.webhooksDue(now + 10_000, owner)).includes(creates.id));
      await store.recordAttempt(creates.id, head.position, {
        attempts: 2,
        firstAttemptAt: now,
        at: now + 10_000,
        statusCode: 204,
        status: 'delivered',
        nextAttemptAt: now + 10_000,
      });
      assert.equal((await store.nextDelivery(creates.id))!.event.resourceId, b.id);
      await store.releaseWebhook(creates.id, owner);
      assert.ok(await store.leaseWebhook(creates.id, loser, now + 2, now + 60_000), 'released: another owner may take it');
      assert.ok(await store.leaseWebhook(creates.id, owner, now + 70_000, now + 130_000), 'expired: taken over');
      const delivered = (await store.describeDeliveries({ webhookId: creates.id, status: 'delivered', offset: 0, limit: 10 })).items;
      assert.deepEqual(
        delivered.map((d) => [d.attempts, d.lastStatusCode, d.lastAttemptAt]),
        [[2, 204, now + 10_000]],
      );
      assert.equal(await store.deleteWebhook(creates.id), true);
      assert.equal((await store.describeDeliveries({ webhookId: creates.id, offset: 0, limit: 10 })).total, 0);
      assert.equal(await store.deleteWebhook(creates.id), false);
      await store.deleteWebhook(deletes.id);
    });

    it('noticeExpiringTokens queues each open code once per webhook, with two nodes at once, at its own lead time', async () => {
      const near = webhook(['AccessToken.ExpiringSoon'], 2);
      const far = webhook(['AccessToken.ExpiringSoon'], 10);
      await store.createWebhook(near);
      await store.createWebhook(far);
      const created = T0 + 50 * DAY_MS;
      const soon = token({ createdAt: created, timeToLiveInDays: 5 });
      const disabled = token({ createdAt: created, timeToLiveInDays: 5, disabled: true });
      await store.createAccessToken(soon);
      await store.createAccessToken(disabled);
      const at = created + 2 * DAY_MS; // 3 days before expiry: within 10, not within 2
      const expiring = (tokenId: string, expiresAt: number, days: number) => {
        const e = event('AccessToken.ExpiringSoon', tokenId, at);
        return { ...e, detail: JSON.stringify({ expiresAt, days }) };
      };
      await Promise.all([
        store.noticeExpiringTokens(at, expiring),
        other.noticeExpiringTokens(at, expiring),
        store.noticeExpiringTokens(at, expiring),
      ]);
      const of = async (id: string) => (await store.describeDeliveries({ webhookId: id, offset: 0, limit: 10 })).items.map((d) => d.event);
      assert.deepEqual(
        (await of(far.id)).map((e) => [e.resourceId, JSON.parse(e.detail)]),
        [[soon.id, { expiresAt: soon.expiresAt, days: 10 }]],
        'once, not for the disabled code',
      );
      assert.deepEqual(await of(near.id), [], 'not yet within 2 days');
      await store.noticeExpiringTokens(created + 4 * DAY_MS, expiring);
      await store.noticeExpiringTokens(created + 4 * DAY_MS, expiring);
      assert.equal((await of(near.id)).length, 1);
      assert.equal((await of(far.id)).length, 1);
      await store.deleteWebhook(near.id);
      await store.deleteWebhook(far.id);
    });

    it('resealSecrets re-seals webhook secrets under their webhook id', async () => {
      const hook = webhook(['AccessKey.Create']);
      await store.createWebhook(hook);
      const seen: string[] = [];
      await store.resealSecrets((sealed, recordId) => {
        seen.push(recordId);
        return `${sealed}|${recordId}`;
      });
      assert.ok(seen.includes(hook.id));
      assert.equal((await store.getWebhook(hook.id))!.secretSealed, `sealed-hook|${hook.id}`);
    });
  });
}
