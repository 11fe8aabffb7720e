import { randomUUID } from 'node:crypto';
import { type RequestOf, RpcClient } from '../client/rpc-client.ts';
import { sourceProof } from '../crypto/source-proof.ts';
import { packageVersion } from '../version.ts';
import { AgentError } from './explain.ts';
import { readMachineId } from './machine-id.ts';
import { collectMachineInfo, type MachineInfo } from './probe.ts';
import { type AgentState, DEFAULT_HEARTBEAT_RATE, loadState, prepareStateDir, rateOf, saveState } from './state-file.ts';

export interface ImportOptions {
  endpoint: string;
  tokenId: string;
  tokenCode: string;
  stateDir: string;
  name?: string | undefined;
  description?: string | undefined;
  /** Overrides the probed machine id (SMCD_AGENT_MACHINE_ID): cloned machines, tests. */
  machineId?: string | undefined;
}

/** SystemInfo limit of ImportSourceServer / ReportSourceServerHeartbeat (API.md section 4). */
const SYSTEM_INFO_MAX_BYTES = 1024;
/** Server-side limits of ImportSourceServer's parameters (src/actions/source-servers.ts). */
const LIMITS = { hostname: 255, platform: 128, architecture: 32, agentVersion: 64, diskSize: 1_048_576, disks: 64, diskPath: 256 };

/** The version this agent reports: smcd's own. */
export const agentVersion = packageVersion;

/** Cuts by code points, so a multi-byte character is never split. */
const clip = (text: string, max: number): string => {
  const chars = Array.from(text);
  return chars.length > max ? chars.slice(0, max).join('') : text;
};

/** "Debian GNU/Linux" + "12" → "Debian GNU/Linux 12"; a name that already carries its version keeps it once. */
export function platformOf(info: Pick<MachineInfo, 'platform' | 'osVersion'>): string {
  const { platform, osVersion } = info;
  const full = !osVersion || platform.endsWith(osVersion) ? platform : `${platform} ${osVersion}`;
  return clip(full.trim(), LIMITS.platform);
}

/**
 * SystemInfo as a JSON object of at most 1 KiB. Addresses are dropped from the end (IPv6 first)
 * until it fits; only an absurd hostname or OS name is then cut.
 */
export function systemInfoOf(info: MachineInfo): string {
  const value = {
    hostname: info.hostname,
    ipv4: [...info.ipv4],
    ipv6: [...info.ipv6],
    cores: info.cores,
    memory: info.memoryBytes,
    kernel: info.kernel,
    os: platformOf(info),
  };
  const size = () => Buffer.byteLength(JSON.stringify(value));
  while (size() > SYSTEM_INFO_MAX_BYTES && (value.ipv6.length > 0 || value.ipv4.length > 0)) {
    if (value.ipv6.length > 0) value.ipv6.pop();
    else value.ipv4.pop();
  }
  if (size() > SYSTEM_INFO_MAX_BYTES) {
    value.hostname = clip(value.hostname, 64);
    value.kernel = clip(value.kernel, 64);
    value.os = clip(value.os, 64);
  }
  return JSON.stringify(value);
}

/** The ImportSourceServer parameters for this machine. Name is sent only when given: the server defaults it to Hostname. */
export function importParams(info: MachineInfo, machineId: string, opts: { name?: string | undefined; description?: string | undefined } = {}) {
  const disks = info.dataDisks.slice(0, LIMITS.disks).map((d) => ({
    Index: d.index,
    Path: clip(d.path, LIMITS.diskPath),
    Size: Math.min(d.sizeGiB, LIMITS.diskSize),
  }));
  const params: RequestOf<'ImportSourceServer'> = {
    MachineId: machineId,
    Name: opts.name,
    Description: opts.description,
    Hostname: clip(info.hostname, LIMITS.hostname),
    Platform: platformOf(info),
    Architecture: clip(info.architecture, LIMITS.architecture),
    KernelLevel: info.kernelLevel,
    AgentVersion: clip(agentVersion(), LIMITS.agentVersion),
    SystemDiskSize: info.systemDisk ? Math.min(info.systemDisk.sizeGiB, LIMITS.diskSize) : undefined,
    DataDisk: disks.length > 0 ? disks : undefined,
    SystemInfo: systemInfoOf(info),
  };
  return params;
}

/**
 * Imports the machine this runs on with an activation code and saves the source key it gets
 * back. The state directory is prepared first, so a directory we cannot write fails before
 * the import uses a slot of the code.
 */
export async function importThisMachine(opts: ImportOptions, probe: () => Promise<MachineInfo> = () => collectMachineInfo()): Promise<AgentState> {
  await prepareStateDir(opts.stateDir);
  const [info, machineId, saved] = await Promise.all([
    probe(),
    opts.machineId ?? readMachineId(opts.stateDir),
    loadState(opts.stateDir).catch(() => undefined),
  ]);
  const client = new RpcClient(opts.endpoint, { accessKeyId: opts.tokenId, accessKeySecret: opts.tokenCode });
  // The key of an earlier import proves this machine owns its source (API.md 5.2).
  const nonce = randomUUID();
  const proof = saved ? { SourceKeyId: saved.sourceKeyId, SourceProof: sourceProof(saved.sourceKeySecret, machineId, nonce) } : {};
  const res = await client.call('ImportSourceServer', { ...importParams(info, machineId, opts), ...proof }, { nonce });
  const { SourceId, SourceKeyId, SourceKeySecret } = res;
  if (typeof SourceId !== 'string' || typeof SourceKeyId !== 'string' || typeof SourceKeySecret !== 'string' || !SourceKeySecret) {
    throw new AgentError(`${opts.endpoint} answered ImportSourceServer without a SourceId and source key: is it an smcd server?`);
  }
  const state: AgentState = {
    endpoint: opts.endpoint,
    sourceId: SourceId,
    sourceKeyId: SourceKeyId,
    sourceKeySecret: SourceKeySecret,
    heartbeatRate: rateOf(res.HeartbeatRate, DEFAULT_HEARTBEAT_RATE),
  };
  await saveState(opts.stateDir, state);
  return state;
}
