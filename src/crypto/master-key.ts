import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface MasterKeySource {
  key: Buffer;
  /** Where it came from, for the start-up log line: never the key itself. */
  origin: string;
}

/** Accepts 32 bytes as 64 hex characters or as base64 / base64url. */
export function parseMasterKey(text: string): Buffer {
  const t = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(t) ? Buffer.from(t, 'hex') : Buffer.from(t, 'base64');
  if (key.length !== 32) throw new Error('SMCD_MASTER_KEY must be 32 bytes, as 64 hex characters or base64');
  return key;
}

/** SMCD_MASTER_KEY, else <data-dir>/master.key, generated (mode 0600) on first start. */
export function loadMasterKey(dataDir: string, env: NodeJS.ProcessEnv = process.env): MasterKeySource {
  if (env.SMCD_MASTER_KEY) return { key: parseMasterKey(env.SMCD_MASTER_KEY), origin: 'SMCD_MASTER_KEY' };
  const path = join(dataDir, 'master.key');
  let text: string | undefined;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text === undefined) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    text = randomBytes(32).toString('hex');
    // 'wx' fails if another process created it first; then read theirs.
    try {
      writeFileSync(path, `${text}\n`, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      text = readFileSync(path, 'utf8');
    }
  }
  return { key: parseMasterKey(text), origin: path };
}
