import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { newAccessTokenId, newSourceId, newSourceKeyId } from '../../src/crypto/ids.ts';
import { type AccessTokenRecord, importRefusal } from '../../src/domain/access-token.ts';
import type { Tag } from '../../src/domain/tags.ts';
import { DAY_MS } from '../../src/domain/time.ts';
import { openStore } from '../../src/store/open-store.ts';
import type { ImportRequest, Store } from '../../src/store/store.ts';
import { tempDir } from '../helpers/server.ts';
import { openTestDatabase, STORE_KINDS, storeSkipReason } from '../helpers/stores.ts';

/**
 * Tags (API.md 5.3) and approval (5.4) through the Store interface, once per store. Each test
 * works on resources of its own, so the tests share one database per store; tag keys carry a
 * per-test prefix where a filter must not see other tests' resources.
 */

const T0 = Date.UTC(2030, 0, 1);
let seq = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${++seq}-${Math.random().toString(36).slice(2, 8)}`;

function token(overrides: Partial<AccessTokenRecord> = {}): AccessTokenRecord {
  return {
    id: newAccessTokenId(),
    codeSealed: 'sealed',
    name: unique('tok'),
    description: '',
    count: 10,
    registeredCount: 0,
    timeToLiveInDays: 30,
    createdAt: T0,
    expiresAt: T0 + 30 * DAY_MS,
    disabled: false,
    ipAddressRange: '',
    createdBy: 'LTAIcreator',
    requireApproval: false,
    ...overrides,
  };
}

function importRequest(tokenId: string, machineId: string): ImportRequest {
  const now = T0 + 1_000;
  return {
    tokenId,
    machineId,
    now,
    clientIp: '192.0.2.10',
    refusal: (t) => importRefusal(t, now, '192.0.2.10'),
    ownsSource: () => true,
    fields: {
      name: null,
      description: null,
      hostname: 'h',
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
    sealKey: (k) => `sealed:${k}`,
  };
}

async function importOf(store: Store, tokenId: string, machineId: string) {
  const r = await store.importSource(importRequest(tokenId, machineId));
  assert.equal(r.outcome, 'imported', JSON.stringify(r));
  return r as Extract<typeof r, { outcome: 'imported' }>;
}

const tagsOf = async (store: Store, type: 'sourceserver' | 'accesstoken', id: string): Promise<Tag[]> =>
  (await store.listTagResources({ type, ids: [id], limit: 100 })).map((r) => ({ key: r.key, value: r.value }));

const many = (n: number, prefix: string): Tag[] =>
  Array.from({ length: n }, (_, i) => ({ key: `${prefix}${String(i).padStart(2, '0')}`, value: `v${i}` }));

for (const kind of STORE_KINDS) {
  describe(`the ${kind} store keeps tags and approval`, { skip: await storeSkipReason(kind) }, () => {
    let dir: string;
    let db: { url: string; drop(): Promise<void> };
    let store: Store;

    before(async () => {
      dir = tempDir('smcd-tags-store-');
      db = await openTestDatabase(kind, dir);
      store = await openStore(db.url, { poolSize: 8, timeoutMs: 15_000 });
    });
    after(async () => {
      await store?.close();
      await db?.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('a code is created with its tags; tagging a key again replaces its value; untag removes keys or all', async () => {
      const t = token();
      await store.createAccessToken(t, undefined, {
        tags: [
          { key: 'env', value: 'prod' },
          { key: 'team', value: '' },
        ],
      });
      assert.deepEqual(await tagsOf(store, 'accesstoken', t.id), [
        { key: 'env', value: 'prod' },
        { key: 'team', value: '' },
      ]);
      assert.deepEqual(await store.tagResources('accesstoken', [t.id], [{ key: 'env', value: 'dev' }]), { outcome: 'done' });
      assert.deepEqual(await tagsOf(store, 'accesstoken', t.id), [
        { key: 'env', value: 'dev' },
        { key: 'team', value: '' },
      ]);
      assert.deepEqual(await store.untagResources('accesstoken', [t.id], ['team', 'absent']), { outcome: 'done' });
      assert.deepEqual(await tagsOf(store, 'accesstoken', t.id), [{ key: 'env', value: 'dev' }]);
      assert.deepEqual(await store.untagResources('accesstoken', [t.id], 'all'), { outcome: 'done' });
      assert.deepEqual(await tagsOf(store, 'accesstoken', t.id), []);
    });

    it('an unknown resource among several changes none of them, for tag and untag', async () => {
      const t = token();
      await store.createAccessToken(t, undefined, { tags: [{ key: 'keep', value: '1' }] });
      const ghost = newAccessTokenId();
      assert.deepEqual(await store.tagResources('accesstoken', [t.id, ghost], [{ key: 'new', value: 'x' }]), { outcome: 'not-found', id: ghost });
      assert.deepEqual(await store.untagResources('accesstoken', [t.id, ghost], 'all'), { outcome: 'not-found', id: ghost });
      assert.deepEqual(await tagsOf(store, 'accesstoken', t.id), [{ key: 'keep', value: '1' }]);
      // A code id is not a source: the type decides which table is asked.
      assert.deepEqual(await store.tagResources('sourceserver', [t.id], [{ key: 'a', value: '' }]), { outcome: 'not-found', id: t.id });
    });

    it('more than 20 tags over several calls is refused and changes nothing; replacing keys does not count twice', async () => {
      const a = token();
      const b = token();
      await store.createAccessToken(a);
      await store.createAccessToken(b);
      assert.deepEqual(await store.tagResources('accesstoken', [a.id], many(15, 'k')), { outcome: 'done' });
      assert.deepEqual(await store.tagResources('accesstoken', [b.id, a.id], many(6, 'n')), { outcome: 'too-many-tags', id: a.id });
      assert.equal((await tagsOf(store, 'accesstoken', a.id)).length, 15);
      assert.deepEqual(await tagsOf(store, 'accesstoken', b.id), []);
      // 5 new keys and 10 existing ones: 20 in all.
      assert.deepEqual(await store.tagResources('accesstoken', [a.id], [...many(10, 'k'), ...many(5, 'n')]), { outcome: 'done' });
      assert.equal((await tagsOf(store, 'accesstoken', a.id)).length, 20);
    });

    it('concurrent tagging of one resource never passes 20 tags', async () => {
      const t = token();
      await store.createAccessToken(t);
      const results = await Promise.all([
        store.tagResources('accesstoken', [t.id], many(12, 'a')),
        store.tagResources('accesstoken', [t.id], many(12, 'b')),
      ]);
      assert.deepEqual(results.map((r) => r.outcome).sort(), ['done', 'too-many-tags']);
      assert.equal((await tagsOf(store, 'accesstoken', t.id)).length, 12);
    });

    it('tagging and deleting the same sources at once: every call settles, and no deleted source keeps a tag', async () => {
      const t = token();
      await store.createAccessToken(t);
      const sources = await Promise.all(Array.from({ length: 10 }, () => importOf(store, t.id, unique('m'))));
      for (const r of sources) await store.tagResources('sourceserver', [r.sourceId], many(5, 'old'));
      const results = await Promise.all(
        sources.flatMap((r) => [store.tagResources('sourceserver', [r.sourceId], many(5, 'old')), store.deleteSource(r.sourceId)]),
      );
      for (const [i, r] of sources.entries()) {
        assert.ok(['done', 'not-found'].includes((results[2 * i] as { outcome: string }).outcome));
        assert.equal(results[2 * i + 1], true);
        assert.deepEqual(await tagsOf(store, 'sourceserver', r.sourceId), []);
      }
    });

    it('both lists filter on every tag given (key and value, or key alone) and carry each item its tags by key', async () => {
      const p = unique('f');
      const t1 = token();
      const t2 = token();
      const t3 = token();
      await store.createAccessToken(t1, undefined, {
        tags: [
          { key: `${p}-env`, value: 'prod' },
          { key: `${p}-a`, value: '1' },
        ],
      });
      await store.createAccessToken(t2, undefined, { tags: [{ key: `${p}-env`, value: 'prod' }] });
      await store.createAccessToken(t3, undefined, { tags: [{ key: `${p}-env`, value: 'dev' }] });
      const tokens = async (tags: Array<{ key: string; value?: string }>) =>
        (await store.listAccessTokens({ tags, now: T0, offset: 0, limit: 50 })).items.map((i) => i.id);
      assert.deepEqual(await tokens([{ key: `${p}-env`, value: 'prod' }]), [t2.id, t1.id]);
      assert.deepEqual(await tokens([{ key: `${p}-env` }]), [t3.id, t2.id, t1.id]);
      assert.deepEqual(
        await tokens([
          { key: `${p}-env`, value: 'prod' },
          { key: `${p}-a`, value: '1' },
        ]),
        [t1.id],
      );
      assert.deepEqual(await tokens([{ key: `${p}-env`, value: 'dev' }, { key: `${p}-a` }]), []);
      const listed = await store.listAccessTokens({ tags: [{ key: `${p}-a` }], now: T0, offset: 0, limit: 50 });
      assert.equal(listed.total, 1);
      assert.deepEqual(listed.items[0]?.tags, [
        { key: `${p}-a`, value: '1' },
        { key: `${p}-env`, value: 'prod' },
      ]);
      assert.deepEqual((await store.listAccessTokens({ ids: [t3.id], now: T0, offset: 0, limit: 50 })).items[0]?.tags, [
        { key: `${p}-env`, value: 'dev' },
      ]);

      const s1 = await importOf(store, t1.id, unique('m'));
      const s2 = await importOf(store, t3.id, unique('m'));
      const sources = async (tags: Array<{ key: string; value?: string }>) =>
        (await store.describeSources({ tags, onlineSince: 0, offset: 0, limit: 50 })).items.map((i) => i.id);
      assert.deepEqual(await sources([{ key: `${p}-env` }]), [s2.sourceId, s1.sourceId]);
      assert.deepEqual(await sources([{ key: `${p}-env`, value: 'prod' }]), [s1.sourceId]);
      assert.deepEqual(
        await sources([
          { key: `${p}-env`, value: 'prod' },
          { key: `${p}-a`, value: '2' },
        ]),
        [],
      );
      const d = await store.describeSources({ ids: [s2.sourceId], onlineSince: 0, offset: 0, limit: 50 });
      assert.deepEqual(d.items[0]?.tags, [{ key: `${p}-env`, value: 'dev' }]);
    });

    it('listTagResources: rows by resource id then key, filtered by ids and tags, resumed after a row', async () => {
      const p = unique('l');
      const ids = [token(), token(), token()];
      for (const t of ids) await store.createAccessToken(t, undefined, { tags: [...many(3, `${p}-`), { key: `${p}-only-${t.id}`, value: '' }] });
      const sorted = ids.map((t) => t.id).sort();
      const all = await store.listTagResources({ type: 'accesstoken', tags: [{ key: `${p}-00`, value: 'v0' }], limit: 100 });
      assert.deepEqual(
        all.map((r) => r.resourceId),
        sorted.flatMap((id) => [id, id, id, id]),
      );
      for (const id of sorted) {
        assert.deepEqual(
          all.filter((r) => r.resourceId === id).map((r) => r.key),
          [`${p}-00`, `${p}-01`, `${p}-02`, `${p}-only-${id}`].sort(),
        );
      }
      // Pages of 5, each resumed after the previous page's last row, give the same rows.
      const paged = [];
      let after: { resourceId: string; key: string } | undefined;
      for (;;) {
        const page = await store.listTagResources({ type: 'accesstoken', tags: [{ key: `${p}-01` }], after, limit: 5 });
        paged.push(...page);
        if (page.length < 5) break;
        const last = page.at(-1)!;
        after = { resourceId: last.resourceId, key: last.key };
      }
      assert.deepEqual(paged, all);
      const [first] = sorted;
      assert.deepEqual(
        (await store.listTagResources({ type: 'accesstoken', tags: [{ key: `${p}-only-${first}` }], limit: 100 })).map((r) => r.resourceId),
        [first, first, first, first],
      );
      assert.equal((await store.listTagResources({ type: 'accesstoken', ids: [first!], limit: 100 })).length, 4);
      assert.deepEqual(await store.listTagResources({ type: 'sourceserver', ids: [first!], limit: 100 }), []);
    });

    it("a source's first import with a code copies the code's tags; a re-import does not; later changes are independent", async () => {
      const t = token();
      await store.createAccessToken(t, undefined, { tags: [{ key: 'env', value: 'prod' }] });
      const machine = unique('m');
      const r = await importOf(store, t.id, machine);
      assert.deepEqual(await tagsOf(store, 'sourceserver', r.sourceId), [{ key: 'env', value: 'prod' }]);
      await store.tagResources('accesstoken', [t.id], [{ key: 'later', value: 'x' }]);
      await store.untagResources('sourceserver', [r.sourceId], ['env']);
      const again = await importOf(store, t.id, machine);
      assert.equal(again.sourceId, r.sourceId);
      assert.deepEqual(await tagsOf(store, 'sourceserver', r.sourceId), []);
      assert.deepEqual(await tagsOf(store, 'accesstoken', t.id), [
        { key: 'env', value: 'prod' },
        { key: 'later', value: 'x' },
      ]);
    });

    it("moving to another code adds that code's keys the source lacks, keeping its own values; a re-created source copies anew", async () => {
      const a = token();
      const b = token();
      await store.createAccessToken(a, undefined, { tags: [{ key: 'env', value: 'prod' }] });
      await store.createAccessToken(b, undefined, {
        tags: [
          { key: 'env', value: 'dev' },
          { key: 'wave', value: '2' },
        ],
      });
      const machine = unique('m');
      const r = await importOf(store, a.id, machine);
      const moved = await importOf(store, b.id, machine);
      assert.equal(moved.sourceId, r.sourceId);
      assert.equal(moved.usedSlot, true);
      assert.deepEqual(await tagsOf(store, 'sourceserver', r.sourceId), [
        { key: 'env', value: 'prod' },
        { key: 'wave', value: '2' },
      ]);
      // Deleting a source deletes its tags; the machine's new source is a first import again.
      assert.equal(await store.deleteSource(r.sourceId), true);
      assert.deepEqual(await tagsOf(store, 'sourceserver', r.sourceId), []);
      const anew = await importOf(store, b.id, machine);
      assert.equal(anew.created, true);
      assert.deepEqual(await tagsOf(store, 'sourceserver', anew.sourceId), [
        { key: 'env', value: 'dev' },
        { key: 'wave', value: '2' },
      ]);
    });

    it('deleting a code deletes its tags; its sources keep theirs', async () => {
      const t = token();
      await store.createAccessToken(t, undefined, { tags: [{ key: 'env', value: 'prod' }] });
      const r = await importOf(store, t.id, unique('m'));
      assert.equal(await store.deleteAccessToken(t.id), true);
      assert.deepEqual(await tagsOf(store, 'accesstoken', t.id), []);
      assert.deepEqual(await tagsOf(store, 'sourceserver', r.sourceId), [{ key: 'env', value: 'prod' }]);
    });

    it('a source created with a RequireApproval code is Pending, and stays so on re-import; others are Approved', async () => {
      const strict = token({ requireApproval: true });
      const open = token();
      await store.createAccessToken(strict);
      await store.createAccessToken(open);
      assert.equal((await store.getAccessToken(strict.id))?.requireApproval, true);
      assert.equal((await store.getAccessToken(open.id))?.requireApproval, false);
      const machine = unique('m');
      const p = await importOf(store, strict.id, machine);
      const a = await importOf(store, open.id, unique('m'));
      assert.equal((await store.getSource(p.sourceId))?.approvalStatus, 'Pending');
      assert.equal((await store.getSource(a.sourceId))?.approvalStatus, 'Approved');
      await importOf(store, strict.id, machine);
      assert.equal((await store.getSource(p.sourceId))?.approvalStatus, 'Pending');
      const pending = await store.describeSources({ ids: [p.sourceId, a.sourceId], approvalStatus: 'Pending', onlineSince: 0, offset: 0, limit: 50 });
      assert.deepEqual(
        pending.items.map((i) => i.id),
        [p.sourceId],
      );
      const approved = await store.describeSources({
        ids: [p.sourceId, a.sourceId],
        approvalStatus: 'Approved',
        onlineSince: 0,
        offset: 0,
        limit: 50,
      });
      assert.deepEqual(
        approved.items.map((i) => i.id),
        [a.sourceId],
      );
    });

    it('approve: Pending becomes Approved; an unknown id among them changes nothing', async () => {
      const strict = token({ requireApproval: true });
      await store.createAccessToken(strict);
      const s1 = await importOf(store, strict.id, unique('m'));
      const s2 = await importOf(store, strict.id, unique('m'));
      const ghost = newSourceId();
      assert.deepEqual(await store.approveSources([s1.sourceId, ghost, s2.sourceId]), { outcome: 'not-found', id: ghost });
      assert.equal((await store.getSource(s1.sourceId))?.approvalStatus, 'Pending');
      assert.deepEqual(await store.approveSources([s1.sourceId, s2.sourceId, s1.sourceId]), { outcome: 'done' });
      assert.equal((await store.getSource(s1.sourceId))?.approvalStatus, 'Approved');
      assert.equal((await store.getSource(s2.sourceId))?.approvalStatus, 'Approved');
      assert.deepEqual(await store.approveSources([s1.sourceId]), { outcome: 'done' });
    });

    it('reject: deletes the sources, their tags and their keys; an unknown id among them changes nothing', async () => {
      const strict = token({ requireApproval: true });
      await store.createAccessToken(strict, undefined, { tags: [{ key: 'env', value: 'prod' }] });
      const s1 = await importOf(store, strict.id, unique('m'));
      const s2 = await importOf(store, strict.id, unique('m'));
      const ghost = newSourceId();
      assert.deepEqual(await store.rejectSources([s1.sourceId, ghost]), { outcome: 'not-found', id: ghost });
      assert.ok(await store.getSource(s1.sourceId));
      assert.deepEqual(await store.rejectSources([s1.sourceId, s2.sourceId]), { outcome: 'done' });
      for (const r of [s1, s2]) {
        assert.equal(await store.getSource(r.sourceId), undefined);
        assert.equal(await store.getSourceKey(r.keyId), undefined);
        assert.deepEqual(await tagsOf(store, 'sourceserver', r.sourceId), []);
      }
      assert.deepEqual(await store.rejectSources([s1.sourceId]), { outcome: 'not-found', id: s1.sourceId });
    });
  });
}
