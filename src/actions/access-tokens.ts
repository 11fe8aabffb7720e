import { createHash } from 'node:crypto';
import { newAccessTokenCode, newAccessTokenId } from '../crypto/ids.ts';
import { tokenStatus } from '../domain/access-token.ts';
import { normaliseIpRange } from '../domain/ip-range.ts';
import { descriptionRule, nameRule } from '../domain/text-rules.ts';
import { DAY_MS, formatTime } from '../domain/time.ts';
import { errors } from '../rpc/errors.ts';
import type { ParamDecl, TextRule } from '../rpc/params.ts';
import type { AccessTokenRecord, TokenStatus } from '../store/store.ts';
import type { ActionDef } from './types.ts';

const CLIENT_TOKEN_TTL_MS = DAY_MS;

const ipRangeRule: TextRule = {
  describe: 'comma-separated IPv4/IPv6 addresses or CIDRs',
  check: (value) => {
    const r = normaliseIpRange(value);
    return 'error' in r ? r.error : null;
  },
};

export const pageNumberParam: ParamDecl = {
  name: 'PageNumber',
  type: 'integer',
  min: 1,
  max: 1_000_000,
  default: 1,
  doc: 'Page to return, from 1.',
};

export const pageSizeParam = (defaultSize: number): ParamDecl => ({
  name: 'PageSize',
  type: 'integer',
  min: 1,
  max: 50,
  default: defaultSize,
  doc: `Entries per page, 1-50 (default ${defaultSize}).`,
});

export const nameParam = (doc: string): ParamDecl => ({ name: 'Name', type: 'string', min: 2, max: 128, rule: nameRule, doc });
export const descriptionParam = (doc: string): ParamDecl => ({
  name: 'Description',
  type: 'string',
  max: 256,
  rule: descriptionRule,
  doc,
});

const tokenIdParam: ParamDecl = { name: 'AccessTokenId', type: 'string', required: true, max: 64, doc: 'The activation code id.' };

function tokenView(t: AccessTokenRecord, now: number) {
  // SMC returns every field of an AccessToken item as a string.
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
  };
}

export const createAccessToken: ActionDef = {
  name: 'CreateAccessToken',
  origin: 'SMC',
  summary: 'Creates an activation code. The code is returned only in this response.',
  signedBy: 'access-key',
  params: [
    nameParam('2-128 characters; starts with a letter (any script); letters, digits, ".", ":", "_", "-".'),
    descriptionParam('0-256 characters, not starting with http:// or https://.'),
    { name: 'Count', type: 'integer', min: 1, max: 1000, default: 100, doc: 'Maximum number of imports, 1-1000 (default 100).' },
    { name: 'TimeToLiveInDays', type: 'integer', min: 1, max: 90, default: 30, doc: 'Lifetime in days, 1-90 (default 30).' },
    { name: 'IpAddressRange', type: 'string', max: 4096, rule: ipRangeRule, doc: 'smcd: addresses/CIDRs allowed to import, comma-separated.' },
    { name: 'ClientToken', type: 'string', min: 1, max: 64, doc: 'smcd: idempotency key, honoured for 24 hours per access key.' },
  ],
  response: ['AccessTokenId', 'AccessTokenCode'],
  async handler(ctx, p) {
    const { store, box, log, metrics } = ctx.services;
    const id = newAccessTokenId();
    const code = newAccessTokenCode();
    const ttl = p.TimeToLiveInDays as number;
    const ipRange = p.IpAddressRange === undefined ? '' : (normaliseIpRange(p.IpAddressRange as string) as { value: string }).value;
    const token: AccessTokenRecord = {
      id,
      codeSealed: box.seal(code, id),
      name: (p.Name as string | undefined) ?? '',
      description: (p.Description as string | undefined) ?? '',
      count: p.Count as number,
      registeredCount: 0,
      timeToLiveInDays: ttl,
      createdAt: ctx.now,
      expiresAt: ctx.now + ttl * DAY_MS,
      disabled: false,
      ipAddressRange: ipRange,
      createdBy: ctx.caller.keyId,
    };
    const clientToken = p.ClientToken as string | undefined;
    const idempotency = clientToken
      ? {
          ownerKeyId: ctx.caller.keyId,
          clientToken,
          fingerprint: createHash('sha256')
            .update(JSON.stringify([token.name, token.description, token.count, ttl, ipRange]))
            .digest('base64url'),
          expiresAt: ctx.now + CLIENT_TOKEN_TTL_MS,
        }
      : undefined;
    const result = await store.createAccessToken(token, idempotency);
    if (result.outcome === 'mismatch') throw errors.idempotentMismatch();
    if (result.outcome === 'replayed') return { AccessTokenId: result.tokenId, AccessTokenCode: '' };
    metrics.tokensCreated.inc();
    log.info({ audit: 'CreateAccessToken', requestId: ctx.requestId, keyId: ctx.caller.keyId, accessTokenId: id, count: token.count, ttlDays: ttl }, 'activation code created');
    return { AccessTokenId: id, AccessTokenCode: code };
  },
};

export const listAccessTokens: ActionDef = {
  name: 'ListAccessTokens',
  origin: 'SMC',
  summary: 'Lists activation codes, newest first. Never returns the code itself.',
  signedBy: 'access-key',
  params: [
    { name: 'AccessTokenId', type: 'list', maxItems: 50, itemMax: 64, doc: 'AccessTokenId.N: only these codes.' },
    { name: 'Name', type: 'string', max: 128, doc: 'Exact name.' },
    { name: 'Status', type: 'enum', values: ['activated', 'unactivated', 'expired'], doc: 'activated | unactivated | expired.' },
    pageNumberParam,
    pageSizeParam(20),
  ],
  response: [
    'TotalCount',
    'PageNumber',
    'PageSize',
    'AccessTokens.AccessToken[]: AccessTokenId, Name, Description, Count, RegisteredCount, TimeToLiveInDays, CreationTime, ExpirationTime, Status, IpAddressRange',
  ],
  async handler(ctx, p) {
    const pageNumber = p.PageNumber as number;
    const pageSize = p.PageSize as number;
    const { total, items } = await ctx.services.store.listAccessTokens({
      ids: p.AccessTokenId as string[] | undefined,
      name: (p.Name as string | undefined) || undefined,
      status: p.Status as TokenStatus | undefined,
      now: ctx.now,
      offset: (pageNumber - 1) * pageSize,
      limit: pageSize,
    });
    return {
      TotalCount: total,
      PageNumber: pageNumber,
      PageSize: pageSize,
      AccessTokens: { AccessToken: items.map((t) => tokenView(t, ctx.now)) },
    };
  },
};

export const disableAccessToken: ActionDef = {
  name: 'DisableAccessToken',
  origin: 'SMC',
  summary: 'Disables an activation code: it imports nothing more; imported sources stay.',
  signedBy: 'access-key',
  params: [tokenIdParam],
  response: [],
  async handler(ctx, p) {
    if (!(await ctx.services.store.disableAccessToken(p.AccessTokenId as string))) throw errors.accessTokenNotFound();
    ctx.services.log.info({ audit: 'DisableAccessToken', requestId: ctx.requestId, keyId: ctx.caller.keyId, accessTokenId: p.AccessTokenId }, 'activation code disabled');
    return {};
  },
};

export const deleteAccessToken: ActionDef = {
  name: 'DeleteAccessToken',
  origin: 'SMC',
  summary: 'Deletes an activation code. Its sources stay and keep its AccessTokenId.',
  signedBy: 'access-key',
  params: [tokenIdParam],
  response: [],
  async handler(ctx, p) {
    if (!(await ctx.services.store.deleteAccessToken(p.AccessTokenId as string))) throw errors.accessTokenNotFound();
    ctx.services.log.info({ audit: 'DeleteAccessToken', requestId: ctx.requestId, keyId: ctx.caller.keyId, accessTokenId: p.AccessTokenId }, 'activation code deleted');
    return {};
  },
};
