import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { newAccessKeyId, newAccessTokenId, newSourceId, newSourceKeyId } from '../../src/crypto/ids.ts';
import type { AccessKeyRecord } from '../../src/domain/access-key.ts';
import type { AccessTokenRecord } from '../../src/domain/access-token.ts';
import { importRefusal } from '../../src/domain/access-token.ts';
import type { SourceFields } from '../../src/domain/source-server.ts';
import { DAY_MS } from '../../src/domain/time.ts';
import { openStore } from '../../src/store/open-store.ts';
import { type ImportRequest, type NonceUse, NonceUsedError, type Store } from '../../src/store/store.ts';
import { tempDir } from '../helpers/server.ts';
import { openTestDatabase, STORE_KINDS, storeSkipReason } from '../helpers/stores.ts';

/**
 * The Store interface, driven directly, once per store: both must give the same
 * answers, including under concurrency. Each test works on ids of its own, so the
 * tests share one database per store.
 */

const T0 = Date.UTC(2030, 0, 1);
let seq = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${++seq}-${Math.random().toString(36).slice(2, 8)}`;

function token(overrides: Partial<AccessTokenRecord> = {}): AccessTokenRecord {
  const createdAt = overrides.createdAt ?? T0;
  const ttl = overrides.timeToLiveInDays ?? 30;
  return {
    id: newAccessTokenId(),
    codeSealed: `sealed-code-${Math.random()}`,
    name: unique('tok'),
    description: 'a code',
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

function accessKey(overrides: Partial<AccessKeyRecord> = {}): AccessKeyRecord {
  return {
    id: newAccessKeyId(),
    secretSealed: `sealed-secret-${Math.random()}`,
    description: 'ops',
    allowedActions: ['CreateAccessToken', 'ListAccessTokens'],
    isRoot: false,
    enabled: true,
    createdAt: T0,
    ...overrides,
  };
}

function fields(overrides: Partial<SourceFields> = {}): SourceFields {
  return {
    name: 'web-1',
    description: 'first web server',
    hostname: 'web-1.example',
    platform: 'Debian GNU/Linux 12',
    architecture: 'x86_64',
    kernelLevel: 6,
    agentVersion: '1.0.0',
    systemDiskSize: 40,
    dataDisks: [{ index: 1, path: '/data', size: 100 }],
    systemInfo: '{"cores":4}',
    ...overrides,
  };
}

function importRequest(tokenId: string, machineId: string, overrides: Partial<ImportRequest> = {}): ImportRequest {
  const now = overrides.now ?? T0 + 1_000;
  return {
    tokenId,
    machineId,
    now,
    clientIp: '192.0.2.10',
    refusal: (t) => importRefusal(t, now, '192.0.2.10'),
    ownsSource: () => true,
    fields: fields(),
    newSourceId: newSourceId(),
    newKeyId: newSourceKeyId(),
    sealKey: (keyId) => `sealed-key-for-${keyId}-${Math.random()}`,
    ...overrides,
  };
}

async function imported(store: Store, req: ImportRequest) {
  const r = await store.importSource(req);
  assert.equal(r.outcome, 'imported', JSON.stringify(r));
  return r as Extract<typeof r, { outcome: 'imported' }>;
}

for (const kind of STORE_KINDS) {
  describe(`the ${kind} store keeps the Store contract`, { skip: await storeSkipReason(kind) }, () => {
    let dir: string;
    let db: { url: string; drop(): Promise<void> };
    let store: Store;

    before(async () => {
      dir = tempDir('smcd-store-');
      db = await openTestDatabase(kind, dir);
      store = await openStore(db.url, { poolSize: 8, timeoutMs: 15_000 });
    });
    after(async () => {
      await store?.close();
      await db?.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('describes where its data is, without a password', async () => {
      assert.ok(store.description.startsWith(kind === 'postgres' ? 'postgres://' : 'sqlite:'), store.description);
      if (kind !== 'postgres') return;
      // The test server trusts loopback, so a URL with a password connects all the same.
      const withPassword = new URL(db.url);
      withPassword.password = 'hunter2hunter2';
      const other = await openStore(withPassword.toString(), { poolSize: 1, timeoutMs: 15_000 });
      try {
        assert.ok(!other.description.includes('hunter2'), other.description);
        assert.equal(other.description, `postgres://${withPassword.username}@${withPassword.host}${withPassword.pathname}`);
      } finally {
        await other.close();
      }
    });

    it('answers ping', async () => {
      await store.ping();
    });

    it('meta: the first value put stays; later puts return it', async () => {
      const key = unique('meta');
      assert.equal(await store.getMeta(key), undefined);
      assert.equal(await store.putMetaIfAbsent(key, 'first'), 'first');
      assert.equal(await store.putMetaIfAbsent(key, 'second'), 'first');
      assert.equal(await store.getMeta(key), 'first');
    });

    it('meta: set overwrites, and put-if-absent then keeps the new value', async () => {
      const key = unique('meta');
      await store.setMeta(key, 'one');
      assert.equal(await store.getMeta(key), 'one');
      await store.setMeta(key, 'two');
      assert.equal(await store.getMeta(key), 'two');
      assert.equal(await store.putMetaIfAbsent(key, 'three'), 'two');
    });

    it('meta: concurrent puts all return the one value that was stored', async () => {
      const key = unique('meta');
      const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => store.putMetaIfAbsent(key, `v${i}`)));
      assert.equal(new Set(answers).size, 1);
      assert.equal(await store.getMeta(key), answers[0]);
    });

    it('access keys: round trip, one root only, enable/disable, delete', async () => {
      const root = accessKey({ isRoot: true, allowedActions: ['*'], description: 'root' });
      assert.equal(await store.insertAccessKey(root), true);
      assert.equal(await store.insertAccessKey(accessKey({ isRoot: true })), false, 'a second root key');
      assert.equal(await store.insertAccessKey({ ...root, isRoot: false }), false, 'the same id again');
      assert.deepEqual(await store.getRootAccessKey(), root);

      const ops = accessKey({ createdAt: T0 + 1 });
      assert.equal(await store.insertAccessKey(ops), true);
      assert.deepEqual(await store.getAccessKey(ops.id), ops);
      assert.deepEqual(
        (await store.listAccessKeys()).map((k) => k.id),
        [root.id, ops.id],
      );
      assert.equal(await store.setAccessKeyEnabled(ops.id, false), true);
      assert.equal((await store.getAccessKey(ops.id))!.enabled, false);
      assert.equal(await store.setAccessKeyEnabled(ops.id, true), true);
      assert.equal((await store.getAccessKey(ops.id))!.enabled, true);
      assert.equal(await store.setAccessKeyEnabled('LTAInosuchkey', false), false);
      assert.equal(await store.setAccessKeySecret(ops.id, 'resealed-secret'), true);
      assert.deepEqual(await store.getAccessKey(ops.id), { ...ops, secretSealed: 'resealed-secret' });
      assert.equal(await store.setAccessKeySecret('LTAInosuchkey', 'x'), false);
      assert.equal(await store.deleteAccessKey(ops.id), true);
      assert.equal(await store.deleteAccessKey(ops.id), false);
      assert.equal(await store.getAccessKey(ops.id), undefined);
    });

    it('nonces: a replay is refused per key id; an expired nonce is usable again; purge forgets', async () => {
      const key = unique('key');
      const nonce = unique('nonce');
      assert.equal(await store.useNonce(key, nonce, T0, T0 + 1_000), true);
      assert.equal(await store.useNonce(key, nonce, T0 + 999, T0 + 1_999), false, 'replay within the window');
      assert.equal(await store.useNonce(unique('other-key'), nonce, T0, T0 + 1_000), true, 'another key id');
      assert.equal(await store.useNonce(key, nonce, T0 + 1_000, T0 + 2_000), true, 'expired: usable again');
      assert.equal(await store.useNonce(key, nonce, T0 + 1_500, T0 + 2_500), false, 'and remembered again');

      const purged = unique('nonce');
      assert.equal(await store.useNonce(key, purged, T0, T0 + 100), true);
      assert.equal(await store.useNonce(key, purged, T0 + 50, T0 + 150), false);
      await store.purgeExpired(T0 + 100);
      // Seen from before its expiry, only a forgotten nonce can be accepted again.
      assert.equal(await store.useNonce(key, purged, T0 + 50, T0 + 150), true);
    });

    it('nonces that may lag (heartbeats) are refused when seen again, lagging or not', async () => {
      const key = unique('key');
      const [a, b, c] = [unique('nonce'), unique('nonce'), unique('nonce')];
      assert.equal(await store.useNonce(key, a, T0, T0 + 60_000, true), true);
      assert.equal(await store.useNonce(key, a, T0 + 1, T0 + 60_001, true), false, 'lagging, replayed lagging');
      assert.equal(await store.useNonce(key, a, T0 + 1, T0 + 60_001), false, 'lagging, replayed on the durable path');
      assert.equal(await store.useNonce(key, b, T0, T0 + 60_000), true);
      assert.equal(await store.useNonce(key, b, T0 + 1, T0 + 60_001, true), false, 'durable, replayed lagging');
      const results = await Promise.all(Array.from({ length: 20 }, () => store.useNonce(key, c, T0, T0 + 60_000, true)));
      assert.equal(results.filter(Boolean).length, 1, 'concurrent lagging uses: exactly one accepted');
    });

    it('nonces: of concurrent uses of one nonce exactly one is accepted', async () => {
      const key = unique('key');
      const nonce = unique('nonce');
      const results = await Promise.all(Array.from({ length: 20 }, () => store.useNonce(key, nonce, T0, T0 + 60_000)));
      assert.equal(results.filter(Boolean).length, 1);
    });

    it('nonces: a create given its NonceUse records it in the same commit; with a used one nothing changes', async () => {
      const key = unique('key');
      const total = async () => (await store.listAccessTokens({ now: T0, offset: 0, limit: 1 })).total;
      const before = await total();
      const use: NonceUse = { keyId: key, nonce: unique('nonce'), now: T0, expiresAt: T0 + 60_000 };
      const first = token();
      assert.equal((await store.createAccessToken(first, undefined, { nonce: use })).outcome, 'created');
      assert.equal(use.written, true);
      assert.equal(await store.useNonce(key, use.nonce, T0 + 1, T0 + 60_001), false, 'the nonce was recorded');
      assert.equal(await total(), before + 1);

      const replay: NonceUse = { ...use, now: T0 + 2, written: undefined };
      const refused = token();
      await assert.rejects(store.createAccessToken(refused, undefined, { nonce: replay }), NonceUsedError);
      assert.equal(replay.written, undefined);
      assert.equal(await store.getAccessToken(refused.id), undefined);
      assert.equal(await total(), before + 1, 'the count did not move either');

      // With a ClientToken: the replay neither creates nor claims the ClientToken.
      const idem = { ownerKeyId: key, clientToken: unique('ct'), fingerprint: 'fp', expiresAt: T0 + DAY_MS };
      await assert.rejects(store.createAccessToken(refused, idem, { nonce: { ...replay } }), NonceUsedError);
      assert.equal(await store.getAccessToken(refused.id), undefined);
      const fresh: NonceUse = { keyId: key, nonce: unique('nonce'), now: T0 + 3, expiresAt: T0 + 60_003 };
      assert.equal((await store.createAccessToken(refused, idem, { nonce: fresh })).outcome, 'created', 'the ClientToken was still free');
      assert.equal(fresh.written, true);
      // A ClientToken mismatch uses its nonce all the same.
      const mismatch: NonceUse = { keyId: key, nonce: unique('nonce'), now: T0 + 4, expiresAt: T0 + 60_004 };
      assert.equal((await store.createAccessToken(token(), { ...idem, fingerprint: 'other' }, { nonce: mismatch })).outcome, 'mismatch');
      assert.equal(mismatch.written, true);
      assert.equal(await store.useNonce(key, mismatch.nonce, T0 + 5, T0 + 60_005), false);
    });

    it('nonces: an import given its NonceUse records it, also when refused; with a used one nothing changes', async () => {
      const t = token({ count: 1 });
      await store.createAccessToken(t);
      const use: NonceUse = { keyId: t.id, nonce: unique('nonce'), now: T0 + 1_000, expiresAt: T0 + 61_000 };
      const first = await imported(store, importRequest(t.id, unique('m'), { nonce: use }));
      assert.equal(use.written, true);

      const replay: NonceUse = { ...use, written: undefined };
      const machine = unique('m');
      await assert.rejects(store.importSource(importRequest(t.id, machine, { nonce: replay })), NonceUsedError);
      assert.equal(replay.written, undefined);
      assert.equal((await store.getAccessToken(t.id))?.registeredCount, 1);
      assert.equal((await store.getSource(first.sourceId))?.machineId !== machine, true);
      assert.equal((await store.describeSources({ accessTokenId: t.id, onlineSince: 0, offset: 0, limit: 10 })).total, 1);

      // Refused (the code is used up) or for a code that is gone: the nonce is used all the same.
      const full: NonceUse = { keyId: t.id, nonce: unique('nonce'), now: T0 + 1_000, expiresAt: T0 + 61_000 };
      assert.deepEqual(await store.importSource(importRequest(t.id, unique('m'), { nonce: full })), { outcome: 'refused', reason: 'count' });
      assert.equal(full.written, true);
      assert.equal(await store.useNonce(t.id, full.nonce, T0 + 1_001, T0 + 61_001), false);
      const gone: NonceUse = { keyId: 'at-gone', nonce: unique('nonce'), now: T0 + 1_000, expiresAt: T0 + 61_000 };
      assert.deepEqual(await store.importSource(importRequest('at-doesnotexist000000', unique('m'), { nonce: gone })), {
        outcome: 'refused',
        reason: 'token-gone',
      });
      assert.equal(await store.useNonce('at-gone', gone.nonce, T0 + 1_001, T0 + 61_001), false);
    });

    it('tokens: create and read back every field', async () => {
      const t = token({ ipAddressRange: '10.0.0.0/8', description: '中文 description' });
      assert.deepEqual(await store.createAccessToken(t), { outcome: 'created', token: t });
      assert.deepEqual(await store.getAccessToken(t.id), t);
      assert.equal(await store.getAccessToken('at-doesnotexist000000'), undefined);
    });

    it('tokens: a ClientToken replays the first id, refuses other parameters, and is scoped to its owner', async () => {
      const owner = unique('owner');
      const clientToken = unique('ct');
      const idem = { ownerKeyId: owner, clientToken, fingerprint: 'fp-1', expiresAt: T0 + DAY_MS };
      const first = token();
      assert.equal((await store.createAccessToken(first, idem)).outcome, 'created');
      assert.deepEqual(await store.createAccessToken(token({ createdAt: T0 + 10 }), idem), { outcome: 'replayed', tokenId: first.id });
      assert.deepEqual(await store.createAccessToken(token({ createdAt: T0 + 10 }), { ...idem, fingerprint: 'fp-2' }), {
        outcome: 'mismatch',
      });
      const other = token();
      assert.equal((await store.createAccessToken(other, { ...idem, ownerKeyId: unique('owner') })).outcome, 'created');
      // After 24 hours the ClientToken is free again.
      const later = token({ createdAt: T0 + DAY_MS });
      assert.equal((await store.createAccessToken(later, { ...idem, fingerprint: 'fp-2', expiresAt: T0 + 2 * DAY_MS })).outcome, 'created');
      assert.deepEqual(await store.createAccessToken(token({ createdAt: T0 + DAY_MS + 1 }), { ...idem, fingerprint: 'fp-2' }), {
        outcome: 'replayed',
        tokenId: later.id,
      });
      // Neither the replay nor the mismatch stored a token.
      const { total } = await store.listAccessTokens({ ids: [first.id, other.id, later.id], now: T0, offset: 0, limit: 50 });
      assert.equal(total, 3);
    });

    it('tokens: the unfiltered TotalCount stays exact through concurrent creates, replays and deletes', async () => {
      const all = async () => (await store.listAccessTokens({ now: T0, offset: 0, limit: 1 })).total;
      const counted = async () =>
        (await store.listAccessTokens({ now: T0, offset: 0, limit: 1, status: 'activated' })).total +
        (await store.listAccessTokens({ now: T0, offset: 0, limit: 1, status: 'unactivated' })).total +
        (await store.listAccessTokens({ now: T0, offset: 0, limit: 1, status: 'expired' })).total;
      const before = await all();
      assert.equal(before, await counted(), 'the counter agrees with COUNT(*) before');
      const plain = Array.from({ length: 30 }, () => token());
      const idem = { ownerKeyId: unique('owner'), clientToken: unique('ct'), fingerprint: 'fp', expiresAt: T0 + DAY_MS };
      await Promise.all([
        ...plain.map((t) => store.createAccessToken(t)),
        ...Array.from({ length: 5 }, () => store.createAccessToken(token(), idem)),
      ]);
      assert.equal(await all(), before + 31);
      await Promise.all([...plain.slice(0, 10).map((t) => store.deleteAccessToken(t.id)), store.deleteAccessToken('at-doesnotexist')]);
      assert.equal(await all(), before + 21);
      assert.equal(await all(), await counted(), 'the counter agrees with COUNT(*) after');
    });

    it('tokens: purge forgets expired ClientTokens', async () => {
      const idem = { ownerKeyId: unique('owner'), clientToken: unique('ct'), fingerprint: 'fp', expiresAt: T0 + 1_000 };
      assert.equal((await store.createAccessToken(token(), idem)).outcome, 'created');
      assert.equal((await store.createAccessToken(token({ createdAt: T0 + 500 }), idem)).outcome, 'replayed');
      await store.purgeExpired(T0 + 1_000);
      // Still within the old claim's lifetime, so only a purged claim creates anew.
      assert.equal((await store.createAccessToken(token({ createdAt: T0 + 500 }), idem)).outcome, 'created');
    });

    it('tokens: concurrent creates with one ClientToken make one code and replay it', async () => {
      const idem = { ownerKeyId: unique('owner'), clientToken: unique('ct'), fingerprint: 'fp', expiresAt: T0 + DAY_MS };
      const tokens = Array.from({ length: 12 }, () => token());
      const results = await Promise.all(tokens.map((t) => store.createAccessToken(t, idem)));
      const created = results.filter((r) => r.outcome === 'created');
      assert.equal(created.length, 1);
      const id = (created[0] as { token: AccessTokenRecord }).token.id;
      for (const r of results) if (r.outcome !== 'created') assert.deepEqual(r, { outcome: 'replayed', tokenId: id });
      const { total } = await store.listAccessTokens({ ids: tokens.map((t) => t.id), now: T0, offset: 0, limit: 50 });
      assert.equal(total, 1);
    });

    it('tokens: list filters by ids, name and status, newest first, with paging', async () => {
      const name = unique('list');
      const now = T0 + 10 * DAY_MS;
      const active = token({ name, createdAt: T0 + 1 });
      const disabled = token({ name, createdAt: T0 + 2, disabled: true });
      const usedUp = token({ name, createdAt: T0 + 3, count: 2, registeredCount: 2 });
      const expired = token({ name, createdAt: T0 + 4, timeToLiveInDays: 1 });
      const expiredDisabled = token({ name, createdAt: T0 + 5, timeToLiveInDays: 1, disabled: true });
      const expiresNow = token({ name, createdAt: now - DAY_MS, timeToLiveInDays: 1 });
      const all = [active, disabled, usedUp, expired, expiredDisabled, expiresNow];
      for (const t of all) assert.equal((await store.createAccessToken(t)).outcome, 'created');
      const newestFirst = [...all].reverse().map((t) => t.id);

      const byName = await store.listAccessTokens({ name, now, offset: 0, limit: 50 });
      assert.equal(byName.total, 6);
      assert.deepEqual(
        byName.items.map((t) => t.id),
        newestFirst,
      );
      const page2 = await store.listAccessTokens({ name, now, offset: 2, limit: 2 });
      assert.equal(page2.total, 6);
      assert.deepEqual(
        page2.items.map((t) => t.id),
        newestFirst.slice(2, 4),
      );
      const pastEnd = await store.listAccessTokens({ name, now, offset: 6, limit: 2 });
      assert.deepEqual([pastEnd.total, pastEnd.items.length], [6, 0]);

      const byIds = await store.listAccessTokens({ ids: [usedUp.id, active.id, 'at-nosuchtoken000000000'], now, offset: 0, limit: 50 });
      assert.deepEqual(
        byIds.items.map((t) => t.id),
        [usedUp.id, active.id],
      );
      const none = await store.listAccessTokens({ ids: [], now, offset: 0, limit: 50 });
      assert.deepEqual([none.total, none.items.length], [0, 0]);
      const unknown = await store.listAccessTokens({ ids: ['at-nosuchtoken000000000'], now, offset: 0, limit: 50 });
      assert.equal(unknown.total, 0);

      const status = async (s: 'activated' | 'unactivated' | 'expired') =>
        (await store.listAccessTokens({ name, status: s, now, offset: 0, limit: 50 })).items.map((t) => t.id).sort();
      assert.deepEqual(await status('activated'), [active.id].sort());
      assert.deepEqual(await status('unactivated'), [disabled.id, usedUp.id].sort());
      // Expired wins over disabled, and a code is expired from its expiry instant on.
      assert.deepEqual(await status('expired'), [expired.id, expiredDisabled.id, expiresNow.id].sort());
      const combined = await store.listAccessTokens({ ids: [active.id, disabled.id], name, status: 'unactivated', now, offset: 0, limit: 50 });
      assert.deepEqual(
        combined.items.map((t) => t.id),
        [disabled.id],
      );
    });

    it('tokens: disable and delete; both report an unknown id', async () => {
      const t = token();
      await store.createAccessToken(t);
      assert.equal(await store.disableAccessToken(t.id), true);
      assert.equal((await store.getAccessToken(t.id))!.disabled, true);
      assert.equal(await store.disableAccessToken('at-nosuchtoken000000000'), false);
      assert.equal(await store.deleteAccessToken(t.id), true);
      assert.equal(await store.getAccessToken(t.id), undefined);
      assert.equal(await store.deleteAccessToken(t.id), false);
    });

    it('import: a new machine uses a slot and gets a source with every field', async () => {
      const t = token();
      await store.createAccessToken(t);
      const machine = unique('m');
      const req = importRequest(t.id, machine, { sealKey: (k) => `sealed:${k}` });
      const r = await imported(store, req);
      assert.deepEqual(r, { outcome: 'imported', sourceId: req.newSourceId, keyId: req.newKeyId, usedSlot: true, created: true });
      assert.equal((await store.getAccessToken(t.id))!.registeredCount, 1);
      const s = (await store.getSource(r.sourceId))!;
      assert.deepEqual(s, {
        id: req.newSourceId,
        keyId: req.newKeyId,
        keySealed: `sealed:${req.newKeyId}`,
        accessTokenId: t.id,
        machineId: machine,
        ...fields(),
        statusInfo: '',
        createdAt: req.now,
        firstImportAt: req.now,
        lastImportAt: req.now,
        firstClientIp: '192.0.2.10',
        lastClientIp: '192.0.2.10',
        lastHeartbeatAt: req.now,
        approvalStatus: 'Approved',
      });
      assert.deepEqual(await store.getSourceKey(req.newKeyId), { id: s!.id, keyId: s!.keyId, keySealed: s!.keySealed });
    });

    it('import: the same machine with the same code updates its source and uses no slot', async () => {
      const t = token();
      await store.createAccessToken(t);
      const machine = unique('m');
      const first = await imported(store, importRequest(t.id, machine));
      const again = importRequest(t.id, machine, {
        now: T0 + 5_000,
        clientIp: '192.0.2.99',
        fields: fields({ name: 'renamed', kernelLevel: null, systemDiskSize: null, dataDisks: [] }),
        sealKey: (k) => `resealed:${k}`,
      });
      const r = await imported(store, again);
      assert.deepEqual(r, { outcome: 'imported', sourceId: first.sourceId, keyId: first.keyId, usedSlot: false, created: false });
      assert.equal((await store.getAccessToken(t.id))!.registeredCount, 1);
      const s = (await store.getSource(first.sourceId))!;
      assert.equal(s.name, 'renamed');
      assert.equal(s.kernelLevel, null);
      assert.equal(s.systemDiskSize, null);
      assert.deepEqual(s.dataDisks, []);
      assert.equal(s.keySealed, `resealed:${first.keyId}`, 'a new secret, same key id');
      assert.deepEqual([s.firstImportAt, s.lastImportAt, s.lastHeartbeatAt], [T0 + 1_000, T0 + 5_000, T0 + 5_000]);
      assert.deepEqual([s.firstClientIp, s.lastClientIp], ['192.0.2.10', '192.0.2.99']);
    });

    it('import: after its source was deleted the machine gets a new source without a slot', async () => {
      const t = token();
      await store.createAccessToken(t);
      const machine = unique('m');
      const first = await imported(store, importRequest(t.id, machine));
      assert.equal(await store.deleteSource(first.sourceId), true);
      const req = importRequest(t.id, machine);
      const r = await imported(store, req);
      assert.deepEqual(r, { outcome: 'imported', sourceId: req.newSourceId, keyId: req.newKeyId, usedSlot: false, created: true });
      assert.notEqual(r.sourceId, first.sourceId);
      assert.equal((await store.getAccessToken(t.id))!.registeredCount, 1);
    });

    it('import: a machine moving to another code uses a slot there and keeps its SourceId', async () => {
      const a = token();
      const b = token();
      await store.createAccessToken(a);
      await store.createAccessToken(b);
      const machine = unique('m');
      const first = await imported(store, importRequest(a.id, machine));
      const r = await imported(store, importRequest(b.id, machine));
      assert.deepEqual(r, { outcome: 'imported', sourceId: first.sourceId, keyId: first.keyId, usedSlot: true, created: false });
      assert.equal((await store.getAccessToken(a.id))!.registeredCount, 1);
      assert.equal((await store.getAccessToken(b.id))!.registeredCount, 1);
      assert.equal((await store.getSource(first.sourceId))!.accessTokenId, b.id);
      // Back to the first code: it was used by this machine already.
      const back = await imported(store, importRequest(a.id, machine));
      assert.equal(back.usedSlot, false);
      assert.equal((await store.getAccessToken(a.id))!.registeredCount, 1);
    });

    it('import: never more than Count machines; a known machine still re-imports when full', async () => {
      const t = token({ count: 2 });
      await store.createAccessToken(t);
      const m1 = unique('m');
      await imported(store, importRequest(t.id, m1));
      await imported(store, importRequest(t.id, unique('m')));
      const third = unique('m');
      assert.deepEqual(await store.importSource(importRequest(t.id, third)), { outcome: 'refused', reason: 'count' });
      assert.equal((await store.describeSources({ accessTokenId: t.id, onlineSince: 0, offset: 0, limit: 50 })).total, 2);
      const again = await imported(store, importRequest(t.id, m1));
      assert.equal(again.usedSlot, false);
      assert.equal((await store.getAccessToken(t.id))!.registeredCount, 2);
    });

    it('import: the refusal callback sees the stored code and its answer is final', async () => {
      const t = token({ ipAddressRange: '10.0.0.0/8' });
      await store.createAccessToken(t);
      let seen: AccessTokenRecord | undefined;
      const machine = unique('m');
      const refused = await store.importSource(
        importRequest(t.id, machine, {
          refusal: (record) => {
            seen = record;
            return 'address';
          },
        }),
      );
      assert.deepEqual(refused, { outcome: 'refused', reason: 'address' });
      assert.deepEqual(seen, t);
      assert.equal((await store.getAccessToken(t.id))!.registeredCount, 0);
      assert.equal((await store.describeSources({ accessTokenId: t.id, onlineSince: 0, offset: 0, limit: 50 })).total, 0);

      await store.disableAccessToken(t.id);
      assert.deepEqual(await store.importSource(importRequest(t.id, machine, { refusal: (r) => importRefusal(r, T0, '10.1.2.3') })), {
        outcome: 'refused',
        reason: 'disabled',
      });
      assert.deepEqual(await store.importSource(importRequest('at-nosuchtoken000000000', machine)), { outcome: 'refused', reason: 'token-gone' });
    });

    it('import: Count=5 and 50 concurrent machines give exactly 5 imports', async () => {
      const t = token({ count: 5 });
      await store.createAccessToken(t);
      const results = await Promise.all(Array.from({ length: 50 }, () => store.importSource(importRequest(t.id, unique('m')))));
      assert.equal(results.filter((r) => r.outcome === 'imported').length, 5);
      assert.equal(results.filter((r) => r.outcome === 'refused' && r.reason === 'count').length, 45);
      assert.equal((await store.getAccessToken(t.id))!.registeredCount, 5);
      assert.equal((await store.describeSources({ accessTokenId: t.id, onlineSince: 0, offset: 0, limit: 50 })).total, 5);
    });

    it('import: one machine importing with two codes at once ends with one source', async () => {
      const a = token();
      const b = token();
      await store.createAccessToken(a);
      await store.createAccessToken(b);
      const machines = Array.from({ length: 8 }, () => unique('m'));
      const results = await Promise.all(
        machines.flatMap((m) => [store.importSource(importRequest(a.id, m)), store.importSource(importRequest(b.id, m))]),
      );
      assert.ok(
        results.every((r) => r.outcome === 'imported'),
        JSON.stringify(results),
      );
      for (const [i, m] of machines.entries()) {
        const [ra, rb] = [results[2 * i], results[2 * i + 1]] as Array<{ sourceId: string; created: boolean }> as [
          { sourceId: string; created: boolean },
          { sourceId: string; created: boolean },
        ];
        assert.equal(ra.sourceId, rb.sourceId, `machine ${m} has one source`);
        assert.equal(Number(ra.created) + Number(rb.created), 1);
      }
      assert.equal((await store.getAccessToken(a.id))!.registeredCount, machines.length);
      assert.equal((await store.getAccessToken(b.id))!.registeredCount, machines.length);
    });

    it('import: a MachineId with a live source needs proof of ownership; a refusal changes nothing', async () => {
      const a = token({ count: 5 });
      const b = token({ count: 5 });
      await store.createAccessToken(a);
      await store.createAccessToken(b);
      const machine = unique('m');
      const first = await imported(store, importRequest(a.id, machine));
      const before = await store.getSource(first.sourceId);
      let asked: unknown;
      const stranger = (tokenId: string) =>
        importRequest(tokenId, machine, {
          fields: fields({ hostname: 'intruder' }),
          sealKey: () => 'sealed-by-intruder',
          ownsSource: (s) => {
            asked = s;
            return false;
          },
        });
      for (const code of [a, b]) {
        assert.deepEqual(await store.importSource(stranger(code.id)), { outcome: 'refused', reason: 'machine-in-use', sourceId: first.sourceId });
        assert.deepEqual(asked, { id: first.sourceId, keyId: first.keyId, keySealed: before!.keySealed });
      }
      assert.deepEqual(await store.getSource(first.sourceId), before, 'the source is untouched');
      assert.equal((await store.getAccessToken(a.id))!.registeredCount, 1);
      assert.equal((await store.getAccessToken(b.id))!.registeredCount, 0, 'no use of the other code was counted');

      // With proof, the other code takes one use and the machine keeps its SourceId.
      const moved = await imported(store, importRequest(b.id, machine, { ownsSource: () => true }));
      assert.equal(moved.sourceId, first.sourceId);
      assert.equal(moved.usedSlot, true);
    });

    it('import: ownership is checked after the code refusals and before the count; a deleted source needs none', async () => {
      const full = token({ count: 1 });
      await store.createAccessToken(full);
      const owner = unique('m');
      const first = await imported(store, importRequest(full.id, owner));
      const other = token({ count: 1 });
      await store.createAccessToken(other);
      await imported(store, importRequest(other.id, unique('m')));
      // `other` is used up: an unproven import of `owner` is refused for ownership, not for the count.
      assert.deepEqual(await store.importSource(importRequest(other.id, owner, { ownsSource: () => false })), {
        outcome: 'refused',
        reason: 'machine-in-use',
        sourceId: first.sourceId,
      });
      // A disabled code answers first.
      await store.disableAccessToken(other.id);
      assert.deepEqual(
        await store.importSource(
          importRequest(other.id, owner, { ownsSource: () => false, refusal: (r) => importRefusal(r, T0 + 1_000, '192.0.2.10') }),
        ),
        { outcome: 'refused', reason: 'disabled' },
      );
      // Once the source is deleted, the machine imports without proof (and without a new use of its code).
      await store.deleteSource(first.sourceId);
      let asked = false;
      const again = await imported(
        store,
        importRequest(full.id, owner, {
          ownsSource: () => {
            asked = true;
            return false;
          },
        }),
      );
      assert.equal(asked, false);
      assert.equal(again.created, true);
      assert.equal(again.usedSlot, false);
    });

    it('import: two unproven imports of one new machine at once: one creates it, the other is refused', async () => {
      const a = token();
      const b = token();
      await store.createAccessToken(a);
      await store.createAccessToken(b);
      const machines = Array.from({ length: 8 }, () => unique('m'));
      const results = await Promise.all(
        machines.flatMap((m) => [a, b].map((t) => store.importSource(importRequest(t.id, m, { ownsSource: () => false })))),
      );
      for (let i = 0; i < machines.length; i++) {
        const pair = [results[2 * i], results[2 * i + 1]];
        assert.equal(pair.filter((r) => r?.outcome === 'imported').length, 1, JSON.stringify(pair));
        assert.equal(pair.filter((r) => r?.outcome === 'refused' && r.reason === 'machine-in-use').length, 1, JSON.stringify(pair));
      }
      const used = (await store.getAccessToken(a.id))!.registeredCount + (await store.getAccessToken(b.id))!.registeredCount;
      assert.equal(used, machines.length, 'each machine used exactly one slot, on the code that won');
    });

    it('sources: heartbeat updates the time and keeps info it was not given', async () => {
      const t = token();
      await store.createAccessToken(t);
      const r = await imported(store, importRequest(t.id, unique('m')));
      assert.equal(await store.recordHeartbeats([{ sourceId: r.sourceId, at: T0 + 60_000, systemInfo: '{"cores":8}', statusInfo: 'migrating' }]), 1);
      let s = (await store.getSource(r.sourceId))!;
      assert.deepEqual([s.lastHeartbeatAt, s.systemInfo, s.statusInfo], [T0 + 60_000, '{"cores":8}', 'migrating']);
      assert.equal(await store.recordHeartbeats([{ sourceId: r.sourceId, at: T0 + 90_000 }]), 1);
      s = (await store.getSource(r.sourceId))!;
      assert.deepEqual([s.lastHeartbeatAt, s.systemInfo, s.statusInfo], [T0 + 90_000, '{"cores":8}', 'migrating']);
      // A late batch never moves the time back; a source that is gone is skipped; many at once.
      const other = await imported(store, importRequest(t.id, unique('m')));
      assert.equal(
        await store.recordHeartbeats([
          { sourceId: r.sourceId, at: T0 + 70_000 },
          { sourceId: 's-nosuchsource0000000', at: T0 },
          { sourceId: other.sourceId, at: T0 + 95_000, statusInfo: 'ok' },
        ]),
        2,
      );
      assert.equal((await store.getSource(r.sourceId))!.lastHeartbeatAt, T0 + 90_000);
      assert.deepEqual(
        [(await store.getSource(other.sourceId))!.lastHeartbeatAt, (await store.getSource(other.sourceId))!.statusInfo],
        [T0 + 95_000, 'ok'],
      );
      assert.equal(await store.recordHeartbeats([]), 0);
    });

    it('sources: describe filters by ids, name, code and state, newest first, with paging', async () => {
      const t = token();
      await store.createAccessToken(t);
      const name = unique('src');
      const old = await imported(store, importRequest(t.id, unique('m'), { now: T0 + 1_000, fields: fields({ name }) }));
      const mid = await imported(store, importRequest(t.id, unique('m'), { now: T0 + 2_000 }));
      const fresh = await imported(store, importRequest(t.id, unique('m'), { now: T0 + 3_000, fields: fields({ name }) }));
      const q = { accessTokenId: t.id, onlineSince: T0 + 2_000, offset: 0, limit: 50 };
      const ids = async (extra: object) => (await store.describeSources({ ...q, ...extra })).items.map((s) => s.id);

      assert.deepEqual(await ids({}), [fresh.sourceId, mid.sourceId, old.sourceId]);
      assert.deepEqual(await ids({ name }), [fresh.sourceId, old.sourceId]);
      assert.deepEqual(await ids({ state: 'Available' }), [fresh.sourceId, mid.sourceId]);
      assert.deepEqual(await ids({ state: 'Unavailable' }), [old.sourceId]);
      assert.deepEqual(await ids({ ids: [old.sourceId, 's-nosuchsource0000000'] }), [old.sourceId]);
      assert.deepEqual(await ids({ ids: [] }), []);
      assert.deepEqual(await ids({ accessTokenId: 'at-nosuchtoken000000000' }), []);
      const page = await store.describeSources({ ...q, offset: 1, limit: 1 });
      assert.deepEqual([page.total, page.items.map((s) => s.id)], [3, [mid.sourceId]]);
    });

    it('sources: modify changes only what it is given; delete removes', async () => {
      const t = token();
      await store.createAccessToken(t);
      const r = await imported(store, importRequest(t.id, unique('m')));
      assert.equal(await store.modifySource(r.sourceId, { name: 'new-name' }), true);
      let s = (await store.getSource(r.sourceId))!;
      assert.deepEqual([s.name, s.description], ['new-name', 'first web server']);
      assert.equal(await store.modifySource(r.sourceId, { description: '' }), true);
      s = (await store.getSource(r.sourceId))!;
      assert.deepEqual([s.name, s.description], ['new-name', '']);
      assert.equal(await store.modifySource('s-nosuchsource0000000', { name: 'x' }), false);
      assert.equal(await store.deleteSource(r.sourceId), true);
      assert.equal(await store.getSource(r.sourceId), undefined);
      assert.equal(await store.getSourceKey(r.keyId), undefined);
      assert.equal(await store.deleteSource(r.sourceId), false);
    });

    it('deleting a code keeps its sources and their AccessTokenId', async () => {
      const t = token();
      await store.createAccessToken(t);
      const r = await imported(store, importRequest(t.id, unique('m')));
      assert.equal(await store.deleteAccessToken(t.id), true);
      assert.equal((await store.getSource(r.sourceId))!.accessTokenId, t.id);
    });

    it('resealSecrets rewrites every sealed secret under its record id', async () => {
      const t = token();
      await store.createAccessToken(t);
      const r = await imported(store, importRequest(t.id, unique('m')));
      const keys = await store.listAccessKeys();
      const tokens = await store.listAccessTokens({ now: T0, offset: 0, limit: 1_000_000 });
      const sources = await store.describeSources({ onlineSince: 0, offset: 0, limit: 1_000_000 });
      const beforeToken = (await store.getAccessToken(t.id))!.codeSealed;
      const beforeSource = (await store.getSource(r.sourceId))!.keySealed;
      const seen: string[] = [];
      const n = await store.resealSecrets((sealed, recordId) => {
        seen.push(recordId);
        return `${sealed}|${recordId}`;
      });
      assert.equal(n, keys.length + tokens.total + sources.total);
      assert.ok(seen.includes(t.id) && seen.includes(r.keyId), 'tokens by id, sources by key id');
      assert.equal((await store.getAccessToken(t.id))!.codeSealed, `${beforeToken}|${t.id}`);
      assert.equal((await store.getSource(r.sourceId))!.keySealed, `${beforeSource}|${r.keyId}`);
      for (const k of keys) assert.equal((await store.getAccessKey(k.id))!.secretSealed, `${k.secretSealed}|${k.id}`);
    });
  });
}
