import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentError } from './explain.ts';

/** What the agent keeps between runs: enough to heartbeat, and to prove it owns its source, without the activation code. */
export interface AgentState {
  endpoint: string;
  sourceId: string;
  sourceKeyId: string;
  sourceKeySecret: string;
  heartbeatRate: number;
}

export const STATE_FILE = 'source.json';
/** SMC's default, used until the server names its own. */
export const DEFAULT_HEARTBEAT_RATE = 30;

/** A whole number of seconds the server asked for, else the fallback. */
export function rateOf(value: unknown, fallback: number): number {
  const n = Number(value);
  return Number.isInteger(n) && n >= 1 && n <= 86_400 ? n : fallback;
}

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
  const filled = (v: unknown): v is string => typeof v === 'string' && v !== '';
  if (!filled(endpoint) || !filled(sourceId) || !filled(sourceKeyId) || !filled(sourceKeySecret)) {
    throw new AgentError(`${path} is incomplete: import again with an activation code`);
  }
  return { endpoint, sourceId, sourceKeyId, sourceKeySecret, heartbeatRate: rateOf(parsed.heartbeatRate, DEFAULT_HEARTBEAT_RATE) };
}
