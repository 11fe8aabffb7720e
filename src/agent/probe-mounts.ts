import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface Mount {
  source: string;
  mountPoint: string;
  fsType: string;
  /** "major:minor" of the mounted device; only mountinfo has it. */
  devNum?: string;
  /** Which directory of the filesystem is mounted; not "/" for a bind mount. Only mountinfo has it. */
  root?: string;
}

/** The kernel writes space, tab, newline and backslash in mount fields as \040 \011 \012 \134. */
const unescapeField = (field = ''): string => field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));

/** proc(5) /proc/mounts: `source mountpoint fstype options dump pass`. */
export function parseMounts(text: string): Mount[] {
  const mounts: Mount[] = [];
  for (const line of text.split('\n')) {
    const [source, mountPoint, fsType] = line.trim().split(/\s+/);
    if (fsType === undefined) continue;
    mounts.push({ source: unescapeField(source), mountPoint: unescapeField(mountPoint), fsType });
  }
  return mounts;
}

/**
 * proc_pid_mountinfo(5): `id parent major:minor root mountpoint options [optional...] - fstype source superopts`.
 * The optional fields vary in number, so the fstype is found after the lone "-".
 */
export function parseMountInfo(text: string): Mount[] {
  const mounts: Mount[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    const dash = f.indexOf('-', 6);
    if (f.length < 7 || dash < 0 || dash + 2 >= f.length) continue;
    mounts.push({
      source: unescapeField(f[dash + 2]),
      mountPoint: unescapeField(f[4]),
      fsType: f[dash + 1] ?? '',
      devNum: f[2] ?? '',
      root: unescapeField(f[3]),
    });
  }
  return mounts;
}

/**
 * Mountinfo is preferred: its device numbers find the disk even when the source is
 * /dev/root or a /dev/disk/by-uuid path. Falls back to /proc/mounts; [] if neither is readable.
 */
export async function readMounts(procRoot: string): Promise<Mount[]> {
  try {
    const mounts = parseMountInfo(await readFile(join(procRoot, 'self', 'mountinfo'), 'utf8'));
    if (mounts.length > 0) return mounts;
  } catch {
    // fall through to /proc/mounts
  }
  try {
    return parseMounts(await readFile(join(procRoot, 'mounts'), 'utf8'));
  } catch {
    return [];
  }
}
