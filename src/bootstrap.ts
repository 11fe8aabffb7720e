import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { safeEqual } from './crypto/compare.ts';
import { newAccessKeyId, newAccessKeySecret } from './crypto/ids.ts';
import { loadKeyring, MasterKeyError, masterKeyPath } from './crypto/master-key.ts';
import { SecretBox } from './crypto/secret-box.ts';
import { openStore } from './store/open-store.ts';
import { type Store, StoreOpenError } from './store/store.ts';
import { readableByOthers, writeSecretFile } from './util/secret-file.ts';

/** A start-up failure the operator must fix; printed as a message, not a stack. */
export class StartupError extends Error {
  override name = 'StartupError';
}

export const MASTER_KEY_CHECK = 'master_key_fingerprint';

export interface OpenedData {
  store: Store;
  box: SecretBox;
  masterKeyOrigin: string;
}

/**
 * Opens the store and the master key, and refuses to go on when the database was
 * written under another master key: every secret in it would fail to decrypt.
 */
export async function openData(dataDir: string, databaseUrl: string, env = process.env, storeOptions = {}): Promise<OpenedData> {
  let store: Store;
  try {
    store = await openStore(databaseUrl, storeOptions);
  } catch (err) {
    if (err instanceof StoreOpenError) throw new StartupError(err.message);
    throw err;
  }
  let box: SecretBox;
  let ring: ReturnType<typeof loadKeyring>;
  try {
    // A database already written under a master key never gets a newly generated one.
    const written = (await store.getMeta(MASTER_KEY_CHECK)) !== undefined;
    ring = loadKeyring(dataDir, env, { mayCreate: !written });
    box = new SecretBox(ring.primary, ring.others);
  } catch (err) {
    await store.close();
    if (err instanceof MasterKeyError) throw new StartupError(err.message);
    throw err;
  }
  box.refresh = () => {
    const fresh = loadKeyring(dataDir, env);
    box.setKeys(fresh.primary, fresh.others);
  };
  const stored = await store.putMetaIfAbsent(MASTER_KEY_CHECK, box.fingerprint);
  // During a rotation the database may name the next or the previous key of the ring.
  if (!box.fingerprints.includes(stored)) {
    await store.close();
    throw new StartupError(
      `The master key from ${ring.origin} is not the one this database was written with. ` +
        'Start with the original key (SMCD_MASTER_KEY or <data-dir>/master.key); every node of one database needs the same key.',
    );
  }
  return { store, box, masterKeyOrigin: ring.origin };
}

export interface RootCredentials {
  AccessKeyId: string;
  AccessKeySecret: string;
  Endpoint?: string;
}

export const rootCredentialsPath = (dataDir: string) => join(dataDir, 'root-credentials.json');

/**
 * Makes sure a root access key exists: from SMCD_ROOT_ACCESS_KEY_ID/SECRET when
 * set, otherwise generated once and written to <data-dir>/root-credentials.json
 * (mode 0600). Returns where the credentials can be found, for the start-up log.
 */
export async function ensureRootKey(data: OpenedData, dataDir: string, now: number, env = process.env): Promise<string> {
  const { store, box } = data;
  const envId = env.SMCD_ROOT_ACCESS_KEY_ID;
  const envSecret = env.SMCD_ROOT_ACCESS_KEY_SECRET;
  if (Boolean(envId) !== Boolean(envSecret)) throw new StartupError('Set both SMCD_ROOT_ACCESS_KEY_ID and SMCD_ROOT_ACCESS_KEY_SECRET, or neither.');
  if (envId && !/^LTAI[A-Za-z0-9]{20}$/.test(envId))
    throw new StartupError('SMCD_ROOT_ACCESS_KEY_ID must be "LTAI" followed by 20 letters or digits.');
  if (envSecret && !/^[A-Za-z0-9]{30}$/.test(envSecret)) throw new StartupError('SMCD_ROOT_ACCESS_KEY_SECRET must be 30 letters or digits.');

  const existing = await store.getRootAccessKey();
  if (existing) {
    if (envId) {
      if (existing.id !== envId || !safeEqual(box.open(existing.secretSealed, existing.id), envSecret ?? ''))
        throw new StartupError(
          `This database already has the root key ${existing.id}; SMCD_ROOT_ACCESS_KEY_ID/SECRET do not match it. ` +
            'To change the root secret, run "smcd keys rotate-root" with the new SMCD_ROOT_ACCESS_KEY_SECRET.',
        );
      return 'SMCD_ROOT_ACCESS_KEY_ID';
    }
    return rootCredentialsPath(dataDir);
  }
  const path = rootCredentialsPath(dataDir);
  if (!envId && existsSync(path)) {
    // Credentials of a root key the database does not have: it was replaced, emptied or is not theirs.
    throw new StartupError(
      `${path} exists, but the database has no root key: the database was replaced or emptied, or the file belongs to another one. ` +
        `Restore the database from a backup, or move ${path} away to start a new database with a new root key.`,
    );
  }
  const id = envId ?? newAccessKeyId();
  const secret = envSecret ?? newAccessKeySecret();
  const inserted = await store.insertAccessKey({
    id,
    secretSealed: box.seal(secret, id),
    description: 'root',
    allowedActions: ['*'],
    isRoot: true,
    enabled: true,
    createdAt: now,
  });
  if (!inserted) return ensureRootKey(data, dataDir, now, env); // another node won the race
  if (envId) return 'SMCD_ROOT_ACCESS_KEY_ID';
  writeRootCredentials(dataDir, { AccessKeyId: id, AccessKeySecret: secret });
  return path;
}

/** root-credentials.json, always a fresh 0600 file (never an existing file's wider mode). */
export function writeRootCredentials(dataDir: string, creds: RootCredentials): void {
  writeSecretFile(rootCredentialsPath(dataDir), `${JSON.stringify(creds, null, 2)}\n`);
}

/** Secret files in the data directory that others may read: logged as a warning at start. */
export function looseSecretFiles(dataDir: string): string[] {
  return [masterKeyPath(dataDir), masterKeyPath(dataDir, 'next'), masterKeyPath(dataDir, 'previous'), rootCredentialsPath(dataDir)].filter(
    readableByOthers,
  );
}

export function readRootCredentials(dataDir: string): RootCredentials | undefined {
  try {
    return JSON.parse(readFileSync(rootCredentialsPath(dataDir), 'utf8')) as RootCredentials;
  } catch {
    return undefined;
  }
}
