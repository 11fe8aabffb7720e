import { randomUUID } from 'node:crypto';
import { link, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** machine-id(5): lower-case hex; "uninitialized" or an empty file (first boot) is not an id. */
const VALID = /^[0-9a-f]{1,128}$/i;

async function readId(path: string): Promise<string | undefined> {
  try {
    const id = (await readFile(path, 'utf8')).trim();
    return VALID.test(id) ? id : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A stable id for this machine, so importing again updates the same source instead of using
 * another slot of the activation code. The systemd id, else the D-Bus one, else one of our own
 * kept in <stateDir>/machine-id. The D-Bus path is taken relative to etcRoot's parent
 * (/etc → /var/lib/dbus/machine-id) so a fixture tree never sees the host's file.
 */
export async function readMachineId(stateDir: string, etcRoot = '/etc'): Promise<string> {
  const known =
    (await readId(join(etcRoot, 'machine-id'))) ??
    (await readId(join(etcRoot, '..', 'var', 'lib', 'dbus', 'machine-id'))) ??
    (await readId(join(stateDir, 'machine-id')));
  if (known) return known;
  return storeNewId(stateDir);
}

/**
 * Written whole to a temporary file, then hard-linked into place: link fails if the name
 * exists, so two agents starting at once agree on the first id, and a crash never leaves a
 * half-written id behind. An existing but unusable file is replaced.
 */
async function storeNewId(stateDir: string): Promise<string> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const id = randomUUID().replace(/-/g, '');
  const path = join(stateDir, 'machine-id');
  const tmp = `${path}.${process.pid}.${randomUUID()}.tmp`;
  await writeFile(tmp, `${id}\n`, { mode: 0o600, flag: 'wx' });
  try {
    await link(tmp, path);
    return id;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const theirs = await readId(path);
    if (theirs) return theirs;
    await rename(tmp, path);
    return id;
  } finally {
    await rm(tmp, { force: true });
  }
}
