import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { ApiCallError, ConnectionError, RpcClient, type Scalar } from '../client/rpc-client.ts';
import { sourceProof } from '../crypto/source-proof.ts';
import { readMachineId } from './machine-id.ts';
import { type MachineInfo, collectMachineInfo } from './probe.ts';

/** What the agent keeps between runs: enough to heartbeat without the activation code. */
export interface AgentState {
  endpoint: string;
  sourceId: string;
  sourceKeyId: string;
  sourceKeySecret: string;
  heartbeatRate: number;
}

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

/** A refusal or failure the agent explains in one line; the command exits 1 with it. */
export class AgentError extends Error {
  override name = 'AgentError';
}

export const STATE_FILE = 'source.json';
/** SMC's default, used until the server names its own. */
export const DEFAULT_HEARTBEAT_RATE = 30;
/** SystemInfo limit of ImportSourceServer / ReportSourceServerHeartbeat (API.md section 4). */
const SYSTEM_INFO_MAX_BYTES = 1024;
/** Server-side limits of ImportSourceServer's parameters (src/actions/source-servers.ts). */
const LIMITS = { hostname: 255, platform: 128, architecture: 32, agentVersion: 64, diskSize: 1_048_576, disks: 64, diskPath: 256 };

const HEARTBEAT_TIMEOUT_MS = 10_000;

let version: string | undefined;
export function agentVersion(): string {
  version ??= String(JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version ?? '');
  return version;
}

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
  const params: Record<string, Scalar | Array<Record<string, Scalar>>> = {
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

/** A whole number of seconds the server asked for, else the fallback. */
function rateOf(value: unknown, fallback: number): number {
  const n = Number(value);
  return Number.isInteger(n) && n >= 1 && n <= 86_400 ? n : fallback;
}

// --- the state file -------------------------------------------------------------------------

export const statePath = (stateDir: string) => join(stateDir, STATE_FILE);

/** Created 0700 so that only this user can list the key file; an existing directory is left as it is. */
export async function prepareStateDir(stateDir: string): Promise<void> {
  try {
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new AgentError(`cannot create the state directory ${stateDir}: ${(err as Error).message}`);
  }
}

/**
 * Written to a temporary file (0600 from the start, never wider), flushed, then renamed over
 * the old one: a crash leaves either the old key or the new one, never half of either.
 */
export async function saveState(stateDir: string, state: AgentState): Promise<void> {
  const path = statePath(stateDir);
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    await rm(tmp, { force: true });
    const file = await open(tmp, 'wx', 0o600);
    try {
      await file.writeFile(`${JSON.stringify(state, null, 2)}\n`);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => {});
    throw new AgentError(`cannot save the source key to ${path}: ${(err as Error).message}`);
  }
}

/** The saved state, or undefined when there is none; a damaged file is an error, not "none". */
export async function loadState(stateDir: string): Promise<AgentState | undefined> {
  const path = statePath(stateDir);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new AgentError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let parsed: Partial<AgentState>;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new AgentError(`${path} is not valid JSON: import again with an activation code`);
  }
  const { endpoint, sourceId, sourceKeyId, sourceKeySecret } = parsed;
  if (![endpoint, sourceId, sourceKeyId, sourceKeySecret].every((v) => typeof v === 'string' && v !== '')) {
    throw new AgentError(`${path} is incomplete: import again with an activation code`);
  }
  return {
    endpoint: endpoint!,
    sourceId: sourceId!,
    sourceKeyId: sourceKeyId!,
    sourceKeySecret: sourceKeySecret!,
    heartbeatRate: rateOf(parsed.heartbeatRate, DEFAULT_HEARTBEAT_RATE),
  };
}

// --- explaining failures --------------------------------------------------------------------

/**
 * One line an operator can act on. Only ids and the endpoint appear in it: never the
 * activation code or a source key secret (the server's messages do not echo them either).
 */
export function explainFailure(err: unknown, ctx: { endpoint: string; tokenId?: string | undefined }): string {
  if (err instanceof AgentError) return err.message;
  if (err instanceof ConnectionError) return `${err.message} (is the smcd server running, and is --endpoint right?)`;
  if (!(err instanceof ApiCallError)) return `unexpected failure: ${(err as Error)?.message ?? String(err)}`;
  const which = (apiCode: string) => `(${ctx.tokenId ? `${ctx.tokenId}, ` : ''}${apiCode})`;
  switch (err.code) {
    case 'AccessToken.Expired':
      return `the activation code has expired: create a new one ${which(err.code)}`;
    case 'AccessToken.Disabled':
      return `the activation code has been disabled: ask for a new one ${which(err.code)}`;
    case 'AccessToken.CountExceeded':
      return `the activation code has been used the maximum number of times: create a new one; machines it imported before can still re-import with it ${which(err.code)}`;
    case 'AccessToken.IpNotAllowed':
      return `the activation code may not be used from this machine's address: ${err.message} Its IpAddressRange does not include the address the server at ${ctx.endpoint} sees this machine connect from; import from an allowed address or use a code whose range includes it ${which(err.code)}`;
    case 'SourceServer.MachineIdInUse':
      return `another source already owns this machine's MachineId, and this machine does not hold that source's key: ${err.message} If this machine is a clone, give it its own id (--machine-id or SMCD_AGENT_MACHINE_ID); otherwise delete that source (smcd source delete) or import from the machine that holds its key (SourceServer.MachineIdInUse)`;
    case 'InvalidAccessKeyId.NotFound':
      return `the activation code${ctx.tokenId ? ` ${ctx.tokenId}` : ''} is not known to ${ctx.endpoint}: it was mistyped or has been deleted (InvalidAccessKeyId.NotFound)`;
    case 'SignatureDoesNotMatch':
      return `the activation code does not match its id${ctx.tokenId ? ` ${ctx.tokenId}` : ''}: check --token-code / SMCD_TOKEN_CODE (SignatureDoesNotMatch)`;
    case 'Throttling.User':
      return `${ctx.endpoint} is refusing this address after too many failed authentications (Throttling.User): wait a minute, check the code, and try again`;
    case 'InvalidTimeStamp.Expired':
      return `this machine's clock is more than 15 minutes away from the server's: set the clock (NTP) and try again`;
    case 'ServiceUnavailable':
      return `${ctx.endpoint} cannot reach its store right now (ServiceUnavailable): try again shortly`;
    case 'Forbidden.RAM':
      return `the credential is not an activation code: --token-id must be the AccessTokenId (at-...) that CreateAccessToken returned`;
    case 'InvalidResponse':
      return err.message;
    default:
      return `${ctx.endpoint} refused the request: ${err.code}: ${err.message}`;
  }
}

/** Failures worth retrying at the next beat: the server or the path to it, not the credential. */
function isTransient(err: unknown): boolean {
  if (err instanceof ConnectionError) return true;
  if (!(err instanceof ApiCallError)) return false;
  return (
    err.status >= 500 ||
    ['Throttling.User', 'InvalidResponse', 'SignatureNonceUsed', 'InvalidTimeStamp.Expired', 'RequestTimeout'].includes(err.code)
  );
}

/** The server no longer accepts this source key: the source was deleted, or the key rotated by another import. */
function isKeyRejected(err: unknown): boolean {
  return (
    err instanceof ApiCallError &&
    ['InvalidAccessKeyId.NotFound', 'InvalidAccessKeyId.Inactive', 'SignatureDoesNotMatch', 'InvalidSourceId.NotFound', 'Forbidden.RAM'].includes(err.code)
  );
}

// --- import ---------------------------------------------------------------------------------

interface ImportResponse {
  SourceId?: unknown;
  SourceKeyId?: unknown;
  SourceKeySecret?: unknown;
  HeartbeatRate?: unknown;
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
  const res = await client.call<ImportResponse>('ImportSourceServer', { ...importParams(info, machineId, opts), ...proof }, { nonce });
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

// --- heartbeats -----------------------------------------------------------------------------

export interface HeartbeatOptions {
  state: AgentState;
  stateDir: string;
  /** Named in messages about a failed re-import. */
  tokenId?: string | undefined;
  /** Imports again with the activation code; absent when the agent was started without one. */
  reimport?: (() => Promise<AgentState>) | undefined;
  /** Aborted on SIGTERM / SIGINT: the loop finishes the beat in flight and returns. */
  signal: AbortSignal;
  /** One line per event worth telling an operator (a failed beat, a re-import). */
  warn: (line: string) => void;
  probe?: () => Promise<MachineInfo>;
}

/**
 * Sends ReportSourceServerHeartbeat every HeartbeatRate seconds (the rate the server last
 * named) until the signal is aborted. The import counted as the first beat, so the loop waits
 * one period before the next. Transient failures are retried at the next beat; a key the
 * server no longer accepts is re-read from the state file (another run may have rotated it),
 * then replaced by importing again when the code is at hand. Throws AgentError when the
 * source cannot be kept alive at all.
 */
export async function sendHeartbeats(opts: HeartbeatOptions): Promise<void> {
  const { stateDir, signal, warn } = opts;
  const probe = opts.probe ?? (() => collectMachineInfo());
  let state = opts.state;
  let lastBeat = Date.now();
  while (!signal.aborted) {
    const wait = Math.max(0, lastBeat + state.heartbeatRate * 1000 - Date.now());
    try {
      await sleep(wait, undefined, { signal });
    } catch {
      break; // aborted: stop cleanly
    }
    lastBeat = Date.now();
    const context = { endpoint: state.endpoint, tokenId: opts.tokenId };
    try {
      const client = new RpcClient(state.endpoint, { accessKeyId: state.sourceKeyId, accessKeySecret: state.sourceKeySecret }, HEARTBEAT_TIMEOUT_MS);
      const res = await client.call<{ HeartbeatRate?: unknown }>('ReportSourceServerHeartbeat', {
        SourceId: state.sourceId,
        SystemInfo: systemInfoOf(await probe()),
      });
      const rate = rateOf(res.HeartbeatRate, state.heartbeatRate);
      if (rate !== state.heartbeatRate) {
        state = { ...state, heartbeatRate: rate };
        await saveState(stateDir, state);
      }
      continue;
    } catch (err) {
      if (err instanceof AgentError) throw err;
      if (!isKeyRejected(err)) {
        warn(`heartbeat for ${state.sourceId} failed: ${explainFailure(err, context)}; retrying in ${state.heartbeatRate} s`);
        continue;
      }
      const reason = (err as ApiCallError).code;
      const saved = await loadState(stateDir).catch(() => undefined);
      if (saved && saved.sourceId === state.sourceId && saved.sourceKeySecret !== state.sourceKeySecret) {
        warn(`the key of ${state.sourceId} was replaced by another import on this machine; using the new one`);
        state = { ...saved, endpoint: state.endpoint };
        continue;
      }
      if (!opts.reimport) {
        throw new AgentError(
          `${state.endpoint} no longer accepts the key of source ${state.sourceId} (${reason}): the source was probably deleted; run "smcd agent import" again with an activation code`,
        );
      }
      warn(`${state.endpoint} no longer accepts the key of source ${state.sourceId} (${reason}): importing this machine again with the activation code`);
      try {
        state = await opts.reimport();
        warn(`imported again as ${state.sourceId}`);
      } catch (reimportErr) {
        if (!isTransient(reimportErr)) throw new AgentError(`importing again failed: ${explainFailure(reimportErr, context)}`);
        warn(`importing again failed: ${explainFailure(reimportErr, context)}; retrying in ${state.heartbeatRate} s`);
      }
    }
  }
}
