import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Keyring {
  primary: Buffer;
  /** Keys that may still open values: the next key during a rotation, the previous one after it. */
  others: Buffer[];
  /** Where the primary came from, for the start-up log line: never the key itself. */
  origin: string;
}

/** Accepts 32 bytes as 64 hex characters or as base64 / base64url. */
export function parseMasterKey(text: string, what = 'SMCD_MASTER_KEY'): Buffer {
  const t = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(t) ? Buffer.from(t, 'hex') : Buffer.from(t, 'base64');
  if (key.length !== 32) throw new Error(`${what} must be 32 bytes, as 64 hex characters or base64`);
  return key;
}

export const masterKeyPath = (dataDir: string, which: '' | 'next' | 'previous' = '') =>
  join(dataDir, which ? `master.key.${which}` : 'master.key');

export const newMasterKeyText = () => randomBytes(32).toString('hex');

/** Writes a key file with mode 0600; refuses to overwrite one. */
export function writeKeyFile(path: string, text: string): void {
  writeFileSync(path, `${text}\n`, { mode: 0o600, flag: 'wx' });
}

function readOptional(path: string): string | undefined {
  return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
}

/**
 * The master keyring: SMCD_MASTER_KEY, else <data-dir>/master.key, generated
 * (mode 0600) on first start; plus SMCD_MASTER_KEY_NEXT / master.key.next and
 * SMCD_MASTER_KEY_PREVIOUS / master.key.previous when present (see SECURITY.md).
 */
export function loadKeyring(dataDir: string, env: NodeJS.ProcessEnv = process.env): Keyring {
  const others: Buffer[] = [];
  for (const which of ['next', 'previous'] as const) {
    const envName = `SMCD_MASTER_KEY_${which.toUpperCase()}`;
    const text = env[envName] ?? readOptional(masterKeyPath(dataDir, which));
    if (text) others.push(parseMasterKey(text, envName));
  }
  if (env.SMCD_MASTER_KEY) return { primary: parseMasterKey(env.SMCD_MASTER_KEY), others, origin: 'SMCD_MASTER_KEY' };
  const path = masterKeyPath(dataDir);
  let text = readOptional(path);
  if (text === undefined) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    text = newMasterKeyText();
    // 'wx' fails if another process created it first; then read theirs.
    try {
      writeKeyFile(path, text);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      text = readFileSync(path, 'utf8');
    }
  }
  return { primary: parseMasterKey(text, path), others, origin: path };
}
