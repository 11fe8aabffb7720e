/**
 * Audit events (API.md section 5.5): what changed, who changed it, from where. A store writes
 * each one in the transaction of the change it records, so an event exists exactly when its
 * change does; the same rows are the outbox webhooks are delivered from (section 5.6).
 */

/** Every event type, with the resource type it names. A new type is one line here. */
export const EVENT_RESOURCE = {
  'AccessToken.Create': 'accesstoken',
  'AccessToken.Disable': 'accesstoken',
  'AccessToken.Delete': 'accesstoken',
  'AccessToken.Tag': 'accesstoken',
  'AccessToken.ExpiringSoon': 'accesstoken',
  'AccessToken.Exhausted': 'accesstoken',
  'SourceServer.Import': 'sourceserver',
  'SourceServer.ImportRefused': 'accesstoken',
  'SourceServer.Modify': 'sourceserver',
  'SourceServer.Delete': 'sourceserver',
  'SourceServer.Approve': 'sourceserver',
  'SourceServer.Reject': 'sourceserver',
  'SourceServer.Tag': 'sourceserver',
  'SourceServer.Offline': 'sourceserver',
  'SourceServer.Online': 'sourceserver',
  'AccessKey.Create': 'accesskey',
  'AccessKey.Enable': 'accesskey',
  'AccessKey.Disable': 'accesskey',
  'AccessKey.Delete': 'accesskey',
} as const;

export type EventType = keyof typeof EVENT_RESOURCE;
export type ResourceType = (typeof EVENT_RESOURCE)[EventType];
export const EVENT_TYPES = Object.keys(EVENT_RESOURCE) as EventType[];

/** Who made a change: the signing key, the client address as checked, the request. Empty for smcd's own sweeps. */
export interface Actor {
  keyId: string;
  clientIp: string;
  requestId: string;
}

export const SYSTEM_ACTOR: Actor = { keyId: '', clientIp: '', requestId: '' };

export interface AuditEvent {
  /** `ev-` + 20 of [a-z0-9]; events are ordered by the store's sequence, never by this id. */
  id: string;
  time: number;
  type: EventType;
  resourceType: ResourceType;
  resourceId: string;
  actorKeyId: string;
  clientIp: string;
  requestId: string;
  /** A JSON object: the changed fields, a refusal's code. Never a secret. */
  detail: string;
}

/** Makes events for one actor at one moment; `newId` is the id generator (crypto/ids). */
export function eventMaker(newId: () => string, actor: Actor, time: number) {
  return (type: EventType, resourceId: string, detail: Record<string, unknown> = {}): AuditEvent => ({
    id: newId(),
    time,
    type,
    resourceType: EVENT_RESOURCE[type],
    resourceId,
    actorKeyId: actor.keyId,
    clientIp: actor.clientIp,
    requestId: actor.requestId,
    detail: JSON.stringify(detail),
  });
}

export type MakeEvent = ReturnType<typeof eventMaker>;

/** A stored event with its place in the store's order. */
export interface StoredEvent extends AuditEvent {
  seq: number;
}

export interface EventQuery {
  types?: EventType[];
  resourceId?: string;
  startTime?: number;
  endTime?: number;
  /** Only events before this sequence number (the page token), newest first. */
  beforeSeq?: number;
  limit: number;
}

export const DEFAULT_AUDIT_RETENTION_DAYS = 365;
