import { LISTED_RESOURCE_TYPE, MAX_TAGS_PER_RESOURCE, TAG_RESOURCE_TYPES, type TagResourceType } from '../domain/tags.ts';
import { errors } from '../rpc/errors.ts';
import { list, oneOf, tags, text } from '../rpc/params.ts';
import { obj, str, wrapped } from '../rpc/shapes.ts';
import { batchRefusal, eventsOf } from './common.ts';
import { defineAction } from './define.ts';

/** ListTagResources pages hold at most this many (resource, tag) rows (API.md 5.3). */
const TAG_PAGE = 50;

const resourceTypeParam = oneOf(TAG_RESOURCE_TYPES, {
  required: true,
  flag: 'type',
  doc: 'sourceserver (migration sources) or accesstoken (smcd: activation codes).',
});

/** The audit event of a tag change (API.md 5.5): per resource, the keys set (with their values) or removed. */
const tagEventOf = (type: TagResourceType) => (type === 'sourceserver' ? 'SourceServer.Tag' : 'AccessToken.Tag');

const notFoundOf = (type: TagResourceType) => (type === 'sourceserver' ? errors.sourceNotFound : errors.accessTokenNotFound);

/** NextToken: where the previous page ended, opaque to the client. */
function encodeNextToken(row: { resourceId: string; key: string }): string {
  return Buffer.from(JSON.stringify([row.resourceId, row.key])).toString('base64url');
}

function decodeNextToken(token: string): { resourceId: string; key: string } {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (Array.isArray(parsed) && parsed.length === 2 && typeof parsed[0] === 'string' && typeof parsed[1] === 'string') {
      return { resourceId: parsed[0], key: parsed[1] };
    }
  } catch {
    /* answered below */
  }
  throw errors.invalidParameter('NextToken', 'must be a NextToken returned by ListTagResources.');
}

export const tagResources = defineAction({
  name: 'TagResources',
  origin: 'SMC',
  summary: `Adds tags to sources or activation codes; a key a resource has gets the new value. At most ${MAX_TAGS_PER_RESOURCE} tags per resource. All or none: an unknown id changes nothing.`,
  signedBy: 'access-key',
  params: {
    ResourceType: resourceTypeParam,
    ResourceId: list({ required: true, maxItems: 50, itemMax: 64, flag: 'id', doc: 'ResourceId.N (1-50): the resources.' }),
    Tag: tags({
      required: true,
      doc: 'Tag.N.Key (1-64 characters, not starting with acs: or aliyun, no http:// or https://) and Tag.N.Value (0-64, no http:// or https://), N 1-20.',
    }),
  },
  response: obj({}),
  async handler(ctx, p) {
    const tagged = p.Tag.map((t) => ({ key: t.key, value: t.value ?? '' }));
    const event = eventsOf(ctx);
    const set = tagged.map((t) => ({ Key: t.key, Value: t.value }));
    const outcome = await ctx.services.store.tagResources(p.ResourceType, p.ResourceId, tagged, (id) =>
      event(tagEventOf(p.ResourceType), id, { Set: set }),
    );
    const refused = batchRefusal(outcome, notFoundOf(p.ResourceType));
    if (refused) throw refused;
    ctx.services.log.info(
      { audit: 'TagResources', requestId: ctx.requestId, keyId: ctx.caller.keyId, resourceType: p.ResourceType, resourceIds: p.ResourceId },
      'resources tagged',
    );
    return {};
  },
});

export const untagResources = defineAction({
  name: 'UntagResources',
  origin: 'SMC',
  summary: 'Removes tags (TagKey.N, or All=true) from sources or activation codes. All or none: an unknown id changes nothing.',
  signedBy: 'access-key',
  params: {
    ResourceType: resourceTypeParam,
    ResourceId: list({ required: true, maxItems: 50, itemMax: 64, flag: 'id', doc: 'ResourceId.N (1-50): the resources.' }),
    TagKey: list({ maxItems: MAX_TAGS_PER_RESOURCE, itemMax: 64, flag: 'key', doc: 'TagKey.N (1-20): the keys to remove.' }),
    All: oneOf(['true', 'false'], { doc: 'true: remove every tag; used only when no TagKey.N is given.' }),
  },
  response: obj({}),
  async handler(ctx, p) {
    // As in SMC, TagKey.N wins over All; with neither there is nothing to remove, which is a missing TagKey.
    const keys = p.TagKey ?? (p.All === 'true' ? 'all' : undefined);
    if (keys === undefined) throw errors.missingParameter('TagKey');
    const event = eventsOf(ctx);
    const outcome = await ctx.services.store.untagResources(p.ResourceType, p.ResourceId, keys, (id, removed) =>
      event(tagEventOf(p.ResourceType), id, { Removed: removed }),
    );
    const refused = batchRefusal(outcome, notFoundOf(p.ResourceType));
    if (refused) throw refused;
    ctx.services.log.info(
      { audit: 'UntagResources', requestId: ctx.requestId, keyId: ctx.caller.keyId, resourceType: p.ResourceType, resourceIds: p.ResourceId },
      'resources untagged',
    );
    return {};
  },
});

export const listTagResources = defineAction({
  name: 'ListTagResources',
  origin: 'SMC',
  summary: `Lists the tags of sources or activation codes: one row per (resource, tag), by resource id then key, at most ${TAG_PAGE} per page.`,
  signedBy: 'access-key',
  params: {
    ResourceType: resourceTypeParam,
    ResourceId: list({ maxItems: 50, itemMax: 64, flag: 'id', doc: 'ResourceId.N: only these resources.' }),
    Tag: tags({ doc: 'Tag.N.Key / Tag.N.Value: only resources having every one of these tags (no Value: any value).' }),
    NextToken: text({ max: 512, doc: 'The NextToken of the previous page.' }),
  },
  response: obj({
    NextToken: str('Pass it to get the next page; empty on the last page.'),
    ...wrapped(
      'TagResources',
      'TagResource',
      obj({
        ResourceId: str(),
        ResourceType: str('ALIYUN::SMC::SOURCESERVER, or ALIYUN::SMC::ACCESSTOKEN for codes.'),
        TagKey: str(),
        TagValue: str(),
      }),
    ).fields,
  }),
  async handler(ctx, p) {
    const rows = await ctx.services.store.listTagResources({
      type: p.ResourceType,
      ids: p.ResourceId,
      tags: p.Tag,
      after: p.NextToken ? decodeNextToken(p.NextToken) : undefined,
      limit: TAG_PAGE + 1,
    });
    const page = rows.slice(0, TAG_PAGE);
    const last = page.at(-1);
    return {
      NextToken: rows.length > TAG_PAGE && last ? encodeNextToken(last) : '',
      TagResources: {
        TagResource: page.map((r) => ({
          ResourceId: r.resourceId,
          ResourceType: LISTED_RESOURCE_TYPE[p.ResourceType],
          TagKey: r.key,
          TagValue: r.value,
        })),
      },
    };
  },
});
