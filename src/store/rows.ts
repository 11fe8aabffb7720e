import type { AccessKeyRecord } from '../domain/access-key.ts';
import type { AccessTokenRecord } from '../domain/access-token.ts';
import type { AuditEvent, EventType, ResourceType, StoredEvent } from '../domain/audit-event.ts';
import type { OwnedSource, SourceFields, SourceRecord } from '../domain/source-server.ts';
import { byKey, type Tag } from '../domain/tags.ts';
import type { DeliveryRecord, DeliveryStatus, WebhookRecord } from '../domain/webhook.ts';

/**
 * Rows to records and back, for stores whose tables use these column names and INTEGER
 * 0/1 flags (both stores do). Only the mapping is shared; each store writes its own SQL.
 * PostgreSQL returns BIGINT as a string; Number() covers both drivers.
 */
type Row = Record<string, unknown>;

export function accessKeyFromRow(r: Row): AccessKeyRecord {
  return {
    id: String(r.id),
    secretSealed: String(r.secret_sealed),
    description: String(r.description),
    allowedActions: String(r.allowed_actions).split(',').filter(Boolean),
    isRoot: Number(r.is_root) === 1,
    enabled: Number(r.enabled) === 1,
    createdAt: Number(r.created_at),
  };
}

/** (id, secret_sealed, description, allowed_actions, is_root, enabled, created_at) */
export function accessKeyValues(k: AccessKeyRecord): unknown[] {
  return [k.id, k.secretSealed, k.description, k.allowedActions.join(','), k.isRoot ? 1 : 0, k.enabled ? 1 : 0, k.createdAt];
}

export function accessTokenFromRow(r: Row): AccessTokenRecord {
  return {
    id: String(r.id),
    codeSealed: String(r.code_sealed),
    name: String(r.name),
    description: String(r.description),
    count: Number(r.count),
    registeredCount: Number(r.registered_count),
    timeToLiveInDays: Number(r.ttl_days),
    createdAt: Number(r.created_at),
    expiresAt: Number(r.expires_at),
    disabled: Number(r.disabled) === 1,
    ipAddressRange: String(r.ip_address_range),
    createdBy: String(r.created_by),
    requireApproval: Number(r.require_approval) === 1,
  };
}

/** (id, code_sealed, name, description, count, registered_count, ttl_days, created_at, expires_at, disabled, ip_address_range, created_by, require_approval) */
export function accessTokenValues(t: AccessTokenRecord): unknown[] {
  return [
    t.id,
    t.codeSealed,
    t.name,
    t.description,
    t.count,
    t.registeredCount,
    t.timeToLiveInDays,
    t.createdAt,
    t.expiresAt,
    t.disabled ? 1 : 0,
    t.ipAddressRange,
    t.createdBy,
    t.requireApproval ? 1 : 0,
  ];
}

export function sourceFromRow(r: Row): SourceRecord {
  return {
    id: String(r.id),
    keyId: String(r.key_id),
    keySealed: String(r.key_sealed),
    accessTokenId: String(r.access_token_id),
    machineId: String(r.machine_id),
    name: String(r.name),
    description: String(r.description),
    hostname: String(r.hostname),
    platform: String(r.platform),
    architecture: String(r.architecture),
    kernelLevel: r.kernel_level === null ? null : Number(r.kernel_level),
    agentVersion: String(r.agent_version),
    systemDiskSize: r.system_disk_size === null ? null : Number(r.system_disk_size),
    dataDisks: JSON.parse(String(r.data_disks)),
    systemInfo: String(r.system_info),
    statusInfo: String(r.status_info),
    createdAt: Number(r.created_at),
    firstImportAt: Number(r.first_import_at),
    lastImportAt: Number(r.last_import_at),
    firstClientIp: String(r.first_client_ip),
    lastClientIp: String(r.last_client_ip),
    lastHeartbeatAt: Number(r.last_heartbeat_at),
    approvalStatus: r.approval_status === 'Pending' ? 'Pending' : 'Approved',
  };
}

export function ownedSourceFromRow(r: Row): OwnedSource {
  return { id: String(r.id), keyId: String(r.key_id), keySealed: String(r.key_sealed) };
}

/**
 * An import's values for (name, description, hostname, platform, architecture, kernel_level,
 * agent_version, system_disk_size, data_disks, system_info). A new source's name defaults to
 * its hostname; on update, null keeps the stored value.
 */
export function sourceFieldValues(f: SourceFields, mode: 'insert' | 'update'): unknown[] {
  return [
    mode === 'insert' ? (f.name ?? f.hostname) : f.name,
    mode === 'insert' ? (f.description ?? '') : f.description,
    f.hostname,
    f.platform,
    f.architecture,
    f.kernelLevel,
    f.agentVersion,
    f.systemDiskSize,
    JSON.stringify(f.dataDisks),
    f.systemInfo,
  ];
}

/** A tags row (resource_id, key, value) as a Tag. */
export const tagFromRow = (r: Row): Tag => ({ key: String(r.key), value: String(r.value) });

/** Each item with its tags (by key), from the tag rows of a page's resources. */
export function withTags<T extends { id: string }>(items: T[], tagRows: Row[]): Array<T & { tags: Tag[] }> {
  const byId = new Map<string, Tag[]>();
  for (const r of tagRows) {
    const id = String(r.resource_id);
    const list = byId.get(id) ?? [];
    list.push(tagFromRow(r));
    byId.set(id, list);
  }
  return items.map((item) => ({ ...item, tags: (byId.get(item.id) ?? []).sort(byKey) }));
}

/** (id, event_time, event_type, resource_type, resource_id, actor_key_id, client_ip, request_id, detail) */
export function eventValues(e: AuditEvent): unknown[] {
  return [e.id, e.time, e.type, e.resourceType, e.resourceId, e.actorKeyId, e.clientIp, e.requestId, e.detail];
}

export function eventFromRow(r: Row): StoredEvent {
  return {
    seq: Number(r.seq),
    id: String(r.id),
    time: Number(r.event_time),
    // Written only from the EventType list (domain/audit-event.ts).
    type: String(r.event_type) as EventType,
    resourceType: String(r.resource_type) as ResourceType,
    resourceId: String(r.resource_id),
    actorKeyId: String(r.actor_key_id),
    clientIp: String(r.client_ip),
    requestId: String(r.request_id),
    detail: String(r.detail),
  };
}

/** Event types are stored as `,A,B,` so that one substring test matches a type. */
export const eventTypesColumn = (types: readonly string[]): string => `,${types.join(',')},`;

export function webhookFromRow(r: Row): WebhookRecord {
  return {
    id: String(r.id),
    url: String(r.url),
    eventTypes: String(r.event_types).split(',').filter(Boolean) as EventType[],
    expiringSoonDays: Number(r.expiring_soon_days),
    secretSealed: String(r.secret_sealed),
    createdAt: Number(r.created_at),
  };
}

/** A delivery row joined with its event's columns (the event's as they are named in audit_events, its seq as event_seq). */
export function deliveryFromRow(r: Row): DeliveryRecord {
  return {
    webhookId: String(r.webhook_id),
    position: Number(r.position),
    event: eventFromRow({ ...r, seq: r.event_seq }),
    status: String(r.status) as DeliveryStatus,
    attempts: Number(r.attempts),
    firstAttemptAt: Number(r.first_attempt_at),
    lastAttemptAt: Number(r.last_attempt_at),
    lastStatusCode: Number(r.last_status_code),
    nextAttemptAt: Number(r.next_attempt_at),
  };
}

/** The ids of RETURNING rows, sorted: a batch's events in a stable order. */
export const sortedIds = (rows: Row[]) => rows.map((r) => String(r.id)).sort();

/** Deleted tag rows (resource_id, key) as each resource's keys, resources and keys sorted. */
export function keysById(rows: Row[]): Array<[string, string[]]> {
  const byId = new Map<string, string[]>();
  for (const r of rows) byId.set(String(r.resource_id), [...(byId.get(String(r.resource_id)) ?? []), String(r.key)]);
  return [...byId].sort(([a], [b]) => (a < b ? -1 : 1)).map(([id, k]) => [id, k.sort()]);
}
