import type { AccessKeyRecord, AccessTokenRecord, OwnedSource, SourceQuery, SourceRecord, TokenQuery } from './store.ts';

/**
 * Row mapping and query text shared by the SQLite and PostgreSQL stores. Both
 * schemas use the same column names and INTEGER flags, so one mapping serves.
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

export function accessKeyToRow(k: AccessKeyRecord): unknown[] {
  return [k.id, k.secretSealed, k.description, k.allowedActions.join(','), k.isRoot ? 1 : 0, k.enabled ? 1 : 0, k.createdAt];
}

export const INSERT_ACCESS_KEY =
  'INSERT INTO access_keys (id, secret_sealed, description, allowed_actions, is_root, enabled, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING';

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
  };
}

export const INSERT_ACCESS_TOKEN =
  'INSERT INTO access_tokens (id, code_sealed, name, description, count, registered_count, ttl_days, created_at, expires_at, disabled, ip_address_range, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)';

export function accessTokenToRow(t: AccessTokenRecord): unknown[] {
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
  };
}

export function ownedSourceFromRow(r: Row): OwnedSource {
  return { id: String(r.id), keyId: String(r.key_id), keySealed: String(r.key_sealed) };
}

export const INSERT_SOURCE = `INSERT INTO sources (id, key_id, key_sealed, access_token_id, machine_id, name, description, hostname,
  platform, architecture, kernel_level, agent_version, system_disk_size, data_disks, system_info, status_info, created_at,
  first_import_at, last_import_at, first_client_ip, last_client_ip, last_heartbeat_at)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?, ?, ?, ?, ?)`;

export const UPDATE_SOURCE_ON_IMPORT = `UPDATE sources SET key_sealed = ?, access_token_id = ?, name = COALESCE(?, name),
  description = COALESCE(?, description),
  hostname = ?, platform = ?, architecture = ?, kernel_level = ?, agent_version = ?, system_disk_size = ?, data_disks = ?,
  system_info = ?, last_import_at = ?, last_client_ip = ?, last_heartbeat_at = ? WHERE id = ?`;

/** A WHERE clause with `?` placeholders; PostgreSQL numbers them itself. */
export interface Where {
  sql: string;
  params: unknown[];
}

function inList(column: string, values: string[], where: string[], params: unknown[]): void {
  if (values.length === 0) where.push('1 = 0');
  else {
    where.push(`${column} IN (${values.map(() => '?').join(', ')})`);
    params.push(...values);
  }
}

export function tokenWhere(q: TokenQuery): Where {
  const where: string[] = [];
  const params: unknown[] = [];
  if (q.ids) inList('id', q.ids, where, params);
  if (q.name !== undefined) {
    where.push('name = ?');
    params.push(q.name);
  }
  // Each Status as indexed predicates: `closed` (a generated column: disabled or used up)
  // and the expiry instant against the clock.
  if (q.status === 'expired') {
    where.push('expires_at <= ?');
    params.push(q.now);
  } else if (q.status === 'unactivated') {
    where.push('closed = 1 AND expires_at > ?');
    params.push(q.now);
  } else if (q.status === 'activated') {
    where.push('closed = 0 AND expires_at > ?');
    params.push(q.now);
  }
  return { sql: where.length ? `WHERE ${where.join(' AND ')}` : '', params };
}

export function sourceWhere(q: SourceQuery): Where {
  const where: string[] = [];
  const params: unknown[] = [];
  if (q.ids) inList('id', q.ids, where, params);
  if (q.name !== undefined) {
    where.push('name = ?');
    params.push(q.name);
  }
  if (q.accessTokenId !== undefined) {
    where.push('access_token_id = ?');
    params.push(q.accessTokenId);
  }
  if (q.state === 'Available') {
    where.push('last_heartbeat_at >= ?');
    params.push(q.onlineSince);
  } else if (q.state === 'Unavailable') {
    where.push('last_heartbeat_at < ?');
    params.push(q.onlineSince);
  }
  return { sql: where.length ? `WHERE ${where.join(' AND ')}` : '', params };
}

/**
 * The import's column values for a source, in INSERT_SOURCE's order after the ids.
 * A new source's name defaults to its hostname; on update, null keeps the stored value.
 */
export function sourceFieldValues(f: import('./store.ts').SourceFields, mode: 'insert' | 'update'): unknown[] {
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
