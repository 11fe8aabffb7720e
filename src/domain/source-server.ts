import type { ApprovalStatus } from './tags.ts';

/** A disk of a migration source; sizes in GiB. */
export interface DataDisk {
  index: number;
  path: string;
  size: number;
}

/** A migration source (SMC's SourceServer). Times are milliseconds since the epoch. */
export interface SourceRecord {
  id: string;
  keyId: string;
  /** The source key secret, sealed under the master key. */
  keySealed: string;
  accessTokenId: string;
  machineId: string;
  name: string;
  description: string;
  hostname: string;
  platform: string;
  architecture: string;
  kernelLevel: number | null;
  agentVersion: string;
  systemDiskSize: number | null;
  dataDisks: DataDisk[];
  /** JSON object text. */
  systemInfo: string;
  statusInfo: string;
  createdAt: number;
  firstImportAt: number;
  lastImportAt: number;
  firstClientIp: string;
  lastClientIp: string;
  lastHeartbeatAt: number;
  /** Pending until an operator approves a source imported with a RequireApproval code. */
  approvalStatus: ApprovalStatus;
}

/** The live source a MachineId belongs to, as the ownership check (API.md 5.2) sees it. */
export type OwnedSource = Pick<SourceRecord, 'id' | 'keyId' | 'keySealed'>;

/**
 * The fields an import writes onto its source. `name`/`description` null: not given,
 * so a new source takes the hostname / '' and an existing one keeps what the operator set.
 */
export type SourceFields = { name: string | null; description: string | null } & Pick<
  SourceRecord,
  'hostname' | 'platform' | 'architecture' | 'kernelLevel' | 'agentVersion' | 'systemDiskSize' | 'dataDisks' | 'systemInfo'
>;

export type SourceState = 'Available' | 'Unavailable';

/** A source is Unavailable after this many heartbeat periods without one. */
export const MISSED_HEARTBEATS = 3;

/** The earliest last-heartbeat time that still counts as Available. */
export function onlineSince(now: number, heartbeatRateSeconds: number): number {
  return now - MISSED_HEARTBEATS * heartbeatRateSeconds * 1000;
}

export function sourceState(lastHeartbeatAt: number, now: number, heartbeatRateSeconds: number) {
  return lastHeartbeatAt >= onlineSince(now, heartbeatRateSeconds)
    ? ({ state: 'Available', errorCode: '' } as const)
    : ({ state: 'Unavailable', errorCode: 'SourceServer.Offline' } as const);
}
