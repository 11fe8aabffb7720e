import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createSecretFile } from '../util/secret-file.ts';

export interface Keyring {
  primary: Buffer;
  /** Keys that may still open values: the next key during a rotation, the previous one after it. */
  others: Buffer[];
  /** Where the primary came from, for the start-up log line: never the key itself. */
  origin: string;
}

/** A master key that cannot be read or used; its message names the file or variable and what to do. */
export class MasterKeyError extends Error {
  override name = 'MasterKeyError';
}

/** Accepts 32 bytes as 64 hex characters or as base64 / base64url. */
export function parseMasterKey(text: string, what = 'SMCD_MASTER_KEY'): Buffer {
  const t = text.trim();
  if (t === '') throw new MasterKeyError(`${what} is empty: it must hold the master key (64 hex characters). Restore it from your backup.`);
  const key = /^[0-9a-fA-F]{64}$/.test(t) ? Buffer.from(t, 'hex') : /^[A-Za-z0-9+/_-]{43}=?$/.test(t) ? Buffer.from(t, 'base64') : Buffer.alloc(0);
  if (key.length !== 32)
    throw new MasterKeyError(`${what} does not hold a master key: it must be 32 bytes, as 64 hex characters or base64. Restore it from your backup.`);
  return key;
}

export const masterKeyPath = (dataDir: string, which: '' | 'next' | 'previous' = '') => join(dataDir, which ? `master.key.${which}` : 'master.key');

export const newMasterKeyText = () => randomBytes(32).toString('hex');

/** Writes a key file with mode 0600, whole or not at all; refuses to overwrite one (EEXIST). */
export function writeKeyFile(path: string, text: string): void {
  createSecretFile(path, `${text}\n`);
}

function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new MasterKeyError(
      `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): check that it is a file smcd may read.`,
    );
  }
}

/**
 * The master keyring: SMCD_MASTER_KEY, else <data-dir>/master.key, generated
 * (mode 0600) on first start; plus SMCD_MASTER_KEY_NEXT / master.key.next and
 * SMCD_MASTER_KEY_PREVIOUS / master.key.previous when present (see SECURITY.md).
 */
export function loadKeyring(dataDir: string, env: NodeJS.ProcessEnv = process.env, opts: { mayCreate?: boolean } = {}): Keyring {
  const others: Buffer[] = [];
  for (const which of ['next', 'previous'] as const) {
    const envName = `SMCD_MASTER_KEY_${which.toUpperCase()}`;
    const text = env[envName] ?? readOptional(masterKeyPath(dataDir, which));
    if (text) others.push(parseMasterKey(text, envName));
  }
  if (env.SMCD_MASTER_KEY) return { primary: parseMasterKey(env.SMCD_MASTER_KEY), others, origin: 'SMCD_MASTER_KEY' };
  const path = masterKeyPath(dataDir);
  let text = readOptional(path);
  if (text === undefined && opts.mayCreate === false) {
    throw new MasterKeyError(
      `${path} is missing, but the database was written under a master key: restore master.key (or set SMCD_MASTER_KEY) from your backup. Without it the secrets in the database cannot be read.`,
    );
  }
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
