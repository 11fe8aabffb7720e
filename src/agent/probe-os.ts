import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * os-release(5): shell-style KEY=value lines; values may be single- or double-quoted,
 * and inside double quotes `\"`, `\\`, `\$` and `` \` `` are escapes.
 */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const [, key, raw] = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*?)\s*$/.exec(line) ?? [];
    if (key === undefined || raw === undefined) continue;
    let value = raw;
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
      value = value.slice(1, -1).replace(/\\(["\\$`])/g, '$1');
    } else if (value.length >= 2 && value.startsWith("'") && value.endsWith("'")) {
      value = value.slice(1, -1);
    }
    out[key] = value;
  }
  return out;
}

export async function readOsRelease(etcRoot: string): Promise<Record<string, string>> {
  try {
    return parseOsRelease(await readFile(join(etcRoot, 'os-release'), 'utf8'));
  } catch {
    return {};
  }
}

/** SMC names architectures the way `uname -m` does, except that aarch64 is `arm64`. */
export function mapArchitecture(nodeArch: string, machine: string): string {
  switch (nodeArch) {
    case 'x64':
      return 'x86_64';
    case 'arm64':
      return 'arm64';
    case 'ia32':
      return 'i386';
    default:
      return machine;
  }
}

/** "6.1.0-18-amd64" → 6; 0 when the release does not start with a number. */
export function kernelLevelOf(release: string): number {
  const m = /^(\d+)/.exec(release.trim());
  return m ? Number(m[1]) : 0;
}
