import { EVENT_TYPES, type StoredEvent } from '../domain/audit-event.ts';
import { timeRule } from '../domain/text-rules.ts';
import { formatTime, parseTime } from '../domain/time.ts';
import { errors } from '../rpc/errors.ts';
import { integer, list, text } from '../rpc/params.ts';
import { obj, str, wrapped } from '../rpc/shapes.ts';
import { defineAction } from './define.ts';

const eventItem = obj({
  EventId: str('ev- and 20 of [a-z0-9].'),
  EventTime: str(),
  EventType: str(`One of ${EVENT_TYPES.join(', ')}.`),
  ResourceType: str('accesstoken | sourceserver | accesskey.'),
  ResourceId: str('The code, source or access key; for ImportRefused, the code the import named.'),
  ActorKeyId: str('The key that signed the change; empty for what smcd recorded by itself (Offline, ExpiringSoon), "cli" for smcd keys.'),
  ClientIp: str('The client address as checked (IPv4-mapped IPv6 as plain IPv4).'),
  RequestId: str('The RequestId of the change.'),
  Detail: str('JSON object: the changed fields, a refusal Code, a refused MachineId. Never a secret.'),
});

export const eventView = (e: StoredEvent) => ({
  EventId: e.id,
  EventTime: formatTime(e.time),
  EventType: e.type,
  ResourceType: e.resourceType,
  ResourceId: e.resourceId,
  ActorKeyId: e.actorKeyId,
  ClientIp: e.clientIp,
  RequestId: e.requestId,
  Detail: e.detail,
});

/** The page token is the store sequence of the page's last event; the next page starts below it. */
function beforeSeq(token: string | undefined): number | undefined {
  if (token === undefined) return undefined;
  if (!/^[1-9]\d{0,15}$/.test(token)) throw errors.invalidParameter('NextToken', 'use the NextToken of the previous page.');
  return Number(token);
}

export const describeAuditEvents = defineAction({
  name: 'DescribeAuditEvents',
  origin: 'smcd',
  summary: 'Lists audit events (every change and every refused import), newest first.',
  signedBy: 'access-key',
  params: {
    EventType: list({ maxItems: 20, itemMax: 64, values: EVENT_TYPES, flag: 'type', doc: 'EventType.N: only events of these types.' }),
    ResourceId: text({ max: 64, doc: 'Only events of this code, source or access key.' }),
    StartTime: text({ max: 20, rule: timeRule, doc: 'Only events at or after this time (yyyy-MM-ddTHH:mm:ssZ).' }),
    EndTime: text({ max: 20, rule: timeRule, doc: 'Only events at or before this time (yyyy-MM-ddTHH:mm:ssZ).' }),
    PageSize: integer({ min: 1, max: 100, default: 50, doc: 'Events per page, 1-100 (default 50).' }),
    NextToken: text({ max: 32, doc: 'The NextToken of the previous page.' }),
  },
  response: obj({
    NextToken: str('Empty on the last page.'),
    ...wrapped('Events', 'Event', eventItem).fields,
  }),
  async handler(ctx, p) {
    const startTime = p.StartTime === undefined ? undefined : parseTime(p.StartTime);
    const endTime = p.EndTime === undefined ? undefined : parseTime(p.EndTime);
    if (startTime !== undefined && endTime !== undefined && endTime < startTime)
      throw errors.invalidParameter('EndTime', 'must not be before StartTime.');
    // One more than the page: whether a next page exists, without counting.
    const rows = await ctx.services.store.describeEvents({
      types: p.EventType,
      resourceId: p.ResourceId || undefined,
      startTime,
      endTime,
      beforeSeq: beforeSeq(p.NextToken || undefined),
      limit: p.PageSize + 1,
    });
    const page = rows.slice(0, p.PageSize);
    const last = page[page.length - 1];
    return {
      NextToken: rows.length > p.PageSize && last ? String(last.seq) : '',
      Events: { Event: page.map(eventView) },
    };
  },
});
