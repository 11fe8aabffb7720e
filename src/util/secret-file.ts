import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/** A temporary file next to `path`, created 0600 (never wider, whatever was there before), written and flushed. */
function writeTemp(path: string, text: string): string {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return tmp;
}

function syncDir(path: string): void {
  try {
    const fd = openSync(dirname(path), 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* some file systems cannot sync a directory; the rename is still atomic */
  }
}

/**
 * Writes a file holding a secret: a new 0600 file renamed over the old one, so a
 * pre-existing file readable by others never receives the secret, and a crash leaves
 * either the old content or the new, never half.
 */
export function writeSecretFile(path: string, text: string): void {
  const tmp = writeTemp(path, text);
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  syncDir(path);
}

/** As writeSecretFile, but never replaces an existing file: throws EEXIST instead. */
export function createSecretFile(path: string, text: string): void {
  const tmp = writeTemp(path, text);
  try {
    linkSync(tmp, path);
  } finally {
    rmSync(tmp, { force: true });
  }
  syncDir(path);
}

/** True when group or others may read the file (it exists and its mode allows it). */
export function readableByOthers(path: string): boolean {
  try {
    return (statSync(path).mode & 0o077) !== 0;
  } catch {
    return false;
  }
}
