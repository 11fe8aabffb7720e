import { createHash } from 'node:crypto';
import { newAccessTokenCode, newAccessTokenId } from '../crypto/ids.ts';
import { type AccessTokenRecord, tokenStatus } from '../domain/access-token.ts';
import { normaliseIpRange } from '../domain/ip-range.ts';
import type { TextRule } from '../domain/text-rules.ts';
import { DAY_MS, formatTime } from '../domain/time.ts';
import { errors } from '../rpc/errors.ts';
import { integer, list, oneOf, tags, text } from '../rpc/params.ts';
import { obj, str, wrapped } from '../rpc/shapes.ts';
import type { Tagged } from '../store/store.ts';
import { descriptionParam, eventsOf, nameParam, pageFields, pageNumber, pageOf, pageSize, tagsField, tagsView } from './common.ts';
import { defineAction } from './define.ts';

const CLIENT_TOKEN_TTL_MS = DAY_MS;

const ipRangeRule: TextRule = {
  describe: 'comma-separated IPv4/IPv6 addresses or CIDRs',
  check: (value) => {
    const r = normaliseIpRange(value);
    return 'error' in r ? r.error : null;
  },
};

const tokenIdParam = text({ required: true, max: 64, doc: 'The activation code id.' });

/** An AccessToken item of ListAccessTokens: every field a string, as SMC returns it. */
const tokenItem = obj({
  AccessTokenId: str(),
  Name: str(),
  Description: str(),
  Count: str('Maximum number of imports.'),
  RegisteredCount: str('Imports used.'),
  TimeToLiveInDays: str(),
  CreationTime: str(),
  ExpirationTime: str('smcd: CreationTime + TimeToLiveInDays.'),
  Status: str('activated | unactivated | expired.'),
  IpAddressRange: str('smcd: addresses/CIDRs allowed to import; empty for any.'),
  Disabled: str('smcd: "true" once DisableAccessToken was called (Status then says unactivated, as in SMC), else "false".'),
  RequireApproval: str('smcd: "true" when sources it imports wait for ApproveSourceServers, else "false".'),
  ...tagsField,
});

function tokenView(t: Tagged<AccessTokenRecord>, now: number) {
  return {
    AccessTokenId: t.id,
    Name: t.name,
    Description: t.description,
    Count: String(t.count),
    RegisteredCount: String(t.registeredCount),
    TimeToLiveInDays: String(t.timeToLiveInDays),
    CreationTime: formatTime(t.createdAt),
    ExpirationTime: formatTime(t.expiresAt),
    Status: tokenStatus(t, now),
    IpAddressRange: t.ipAddressRange,
    Disabled: String(t.disabled),
    RequireApproval: String(t.requireApproval),
    Tags: tagsView(t.tags),
  };
}

export const createAccessToken = defineAction({
  name: 'CreateAccessToken',
  origin: 'SMC',
  summary: 'Creates an activation code. The code is returned only in this response.',
  signedBy: 'access-key',
  nonce: 'with-write',
  params: {
    Name: nameParam('2-128 characters; starts with a letter (any script); letters, digits, ".", ":", "_", "-".'),
    Description: descriptionParam('0-256 characters, not starting with http:// or https://.'),
    Count: integer({ min: 1, max: 1000, default: 100, doc: 'Maximum number of imports, 1-1000 (default 100).' }),
    TimeToLiveInDays: integer({ min: 1, max: 90, default: 30, flag: 'ttl-days', doc: 'Lifetime in days, 1-90 (default 30).' }),
    IpAddressRange: text({ max: 4096, rule: ipRangeRule, flag: 'ip-range', doc: 'smcd: addresses/CIDRs allowed to import, comma-separated.' }),
    ClientToken: text({ min: 1, max: 64, doc: 'smcd: idempotency key, honoured for 24 hours per access key.' }),
    Tag: tags({
      doc: "smcd: Tag.N.Key / Tag.N.Value (N 1-20): the code's tags; a source's first import with the code copies them onto the source.",
    }),
    RequireApproval: oneOf(['true', 'false'], {
      doc: 'smcd: true: sources first imported with this code are Pending until ApproveSourceServers (default false).',
    }),
  },
  response: obj({
    AccessTokenId: str('The code id, at- and 20 of [a-z0-9].'),
    AccessTokenCode: str('The code: 32 of [A-Za-z0-9], returned only here, only once (empty on a ClientToken replay).'),
  }),
  async handler(ctx, p) {
    const { store, box, log, metrics } = ctx.services;
    const id = newAccessTokenId();
    const code = newAccessTokenCode();
    const range = p.IpAddressRange === undefined ? undefined : normaliseIpRange(p.IpAddressRange);
    const ipRange = range && 'value' in range ? range.value : '';
    const token: AccessTokenRecord = {
      id,
      codeSealed: box.seal(code, id),
      name: p.Name ?? '',
      description: p.Description ?? '',
      count: p.Count,
      registeredCount: 0,
      timeToLiveInDays: p.TimeToLiveInDays,
      createdAt: ctx.now,
      expiresAt: ctx.now + p.TimeToLiveInDays * DAY_MS,
      disabled: false,
      ipAddressRange: ipRange,
      createdBy: ctx.caller.keyId,
      requireApproval: p.RequireApproval === 'true',
    };
    const codeTags = (p.Tag ?? []).map((t) => ({ key: t.key, value: t.value ?? '' }));
    const idempotency = p.ClientToken
      ? {
          ownerKeyId: ctx.caller.keyId,
          clientToken: p.ClientToken,
          fingerprint: createHash('sha256')
            .update(
              JSON.stringify([
                token.name,
                token.description,
                token.count,
                token.timeToLiveInDays,
                ipRange,
                // Added later: left out when unused, so ClientTokens given before keep their fingerprint.
                ...(codeTags.length || token.requireApproval ? [codeTags, token.requireApproval] : []),
              ]),
            )
            .digest('base64url'),
          expiresAt: ctx.now + CLIENT_TOKEN_TTL_MS,
        }
      : undefined;
    const event = eventsOf(ctx)('AccessToken.Create', id, {
      Name: token.name,
      Description: token.description,
      Count: token.count,
      TimeToLiveInDays: token.timeToLiveInDays,
      ExpirationTime: formatTime(token.expiresAt),
      IpAddressRange: token.ipAddressRange,
    });
    const result = await store.createAccessToken(token, idempotency, { tags: codeTags, nonce: ctx.nonce, event });
    if (result.outcome === 'mismatch') throw errors.idempotentMismatch();
    if (result.outcome === 'replayed') return { AccessTokenId: result.tokenId, AccessTokenCode: '' };
    metrics.tokensCreated.inc();
    log.info(
      {
        audit: 'CreateAccessToken',
        requestId: ctx.requestId,
        keyId: ctx.caller.keyId,
        accessTokenId: id,
        count: token.count,
        ttlDays: token.timeToLiveInDays,
      },
      'activation code created',
    );
    return { AccessTokenId: id, AccessTokenCode: code };
  },
});

export const listAccessTokens = defineAction({
  name: 'ListAccessTokens',
  origin: 'SMC',
  summary: 'Lists activation codes, newest first. Never returns the code itself.',
  signedBy: 'access-key',
  params: {
    AccessTokenId: list({ maxItems: 50, itemMax: 64, flag: 'id', doc: 'AccessTokenId.N: only these codes.' }),
    Name: text({ max: 128, doc: 'Exact name.' }),
    Status: oneOf(['activated', 'unactivated', 'expired', 'disabled'], {
      doc: 'activated | unactivated | expired; smcd also takes disabled (the disabled codes among the unactivated).',
    }),
    Tag: tags({ doc: 'smcd: Tag.N.Key / Tag.N.Value: only codes having every one of these tags (no Value: any value).' }),
    PageNumber: pageNumber,
    PageSize: pageSize(20),
  },
  response: obj({ ...pageFields, ...wrapped('AccessTokens', 'AccessToken', tokenItem).fields }),
  async handler(ctx, p) {
    const { total, items } = await ctx.services.store.listAccessTokens({
      ids: p.AccessTokenId,
      name: p.Name || undefined,
      status: p.Status,
      tags: p.Tag,
      now: ctx.now,
      ...pageOf(p),
    });
    return {
      TotalCount: total,
      PageNumber: p.PageNumber,
      PageSize: p.PageSize,
      AccessTokens: { AccessToken: items.map((t) => tokenView(t, ctx.now)) },
    };
  },
});

export const disableAccessToken = defineAction({
  name: 'DisableAccessToken',
  origin: 'SMC',
  summary: 'Disables an activation code: it imports nothing more; imported sources stay.',
  signedBy: 'access-key',
  params: { AccessTokenId: tokenIdParam },
  response: obj({}),
  async handler(ctx, p) {
    const event = eventsOf(ctx)('AccessToken.Disable', p.AccessTokenId, { Disabled: true });
    if (!(await ctx.services.store.disableAccessToken(p.AccessTokenId, event))) throw errors.accessTokenNotFound();
    ctx.services.log.info(
      { audit: 'DisableAccessToken', requestId: ctx.requestId, keyId: ctx.caller.keyId, accessTokenId: p.AccessTokenId },
      'activation code disabled',
    );
    return {};
  },
});

export const deleteAccessToken = defineAction({
  name: 'DeleteAccessToken',
  origin: 'SMC',
  summary: 'Deletes an activation code. Its sources stay and keep its AccessTokenId.',
  signedBy: 'access-key',
  params: { AccessTokenId: tokenIdParam },
  response: obj({}),
  async handler(ctx, p) {
    const event = eventsOf(ctx)('AccessToken.Delete', p.AccessTokenId);
    if (!(await ctx.services.store.deleteAccessToken(p.AccessTokenId, event))) throw errors.accessTokenNotFound();
    ctx.services.log.info(
      { audit: 'DeleteAccessToken', requestId: ctx.requestId, keyId: ctx.caller.keyId, accessTokenId: p.AccessTokenId },
      'activation code deleted',
    );
    return {};
  },
});
