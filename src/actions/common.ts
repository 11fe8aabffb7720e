import { newEventId } from '../crypto/ids.ts';
import { eventMaker, type MakeEvent } from '../domain/audit-event.ts';
import { MAX_TAGS_PER_RESOURCE, type Tag } from '../domain/tags.ts';
import { descriptionRule, nameRule } from '../domain/text-rules.ts';
import type { RequestContext } from '../rpc/action.ts';
import { type ApiError, errors } from '../rpc/errors.ts';
import { integer, text } from '../rpc/params.ts';
import { int, obj, str, wrapped } from '../rpc/shapes.ts';
import type { BatchOutcome } from '../store/store.ts';

/** Parameters and fields several actions declare alike. */
export const pageNumber = integer({ min: 1, max: 1_000_000, default: 1, flag: 'page', doc: 'Page to return, from 1.' });
export const pageSize = <const D extends number>(defaultSize: D) =>
  integer({ min: 1, max: 50, default: defaultSize, doc: `Entries per page, 1-50 (default ${defaultSize}).` });

export const nameParam = (doc: string) => text({ min: 2, max: 128, rule: nameRule, doc });
export const descriptionParam = (doc: string) => text({ max: 256, rule: descriptionRule, doc });

/** The paging fields of every list response, integers as in SMC. */
export const pageFields = {
  TotalCount: int('Entries matching the filters, on every page.'),
  PageNumber: int(),
  PageSize: int(),
} as const;

/** PageNumber and PageSize as the store's offset and limit. */
export const pageOf = (p: { PageNumber: number; PageSize: number }) => ({ offset: (p.PageNumber - 1) * p.PageSize, limit: p.PageSize });

/** `Tags.Tag[]` with Key and Value, on every item of both lists (an empty list when untagged). */
export const tagsField = wrapped('Tags', 'Tag', obj({ Key: str(), Value: str() }), 'The tags of this resource, by key.').fields;

export const tagsView = (tags: readonly Tag[]) => ({ Tag: tags.map((t) => ({ Key: t.key, Value: t.value })) });

/** A batch's refusal as the API answers it, naming the resource that stopped it; undefined when done. */
export function batchRefusal(outcome: BatchOutcome, notFound: (id: string) => ApiError): ApiError | undefined {
  if (outcome.outcome === 'not-found') return notFound(outcome.id);
  if (outcome.outcome === 'too-many-tags') return errors.tooManyTags(outcome.id, MAX_TAGS_PER_RESOURCE);
  return undefined;
}

/** Events made by this request: its signer, client address and RequestId, at its time. */
export const eventsOf = (ctx: RequestContext): MakeEvent =>
  eventMaker(newEventId, { keyId: ctx.caller.keyId, clientIp: ctx.clientIp, requestId: ctx.requestId }, ctx.now);
