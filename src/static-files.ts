import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';

export interface StaticFile {
  type: string;
  body: Buffer;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html;charset=utf-8',
  '.js': 'text/javascript;charset=utf-8',
  '.css': 'text/css;charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.sh': 'text/x-shellscript;charset=utf-8',
};

/**
 * The files of a shipped directory, read once when the server starts: only regular
 * files directly in it (no symlinks, no subdirectories), so what a request can reach
 * is fixed then and nothing placed there later, or linked from elsewhere, is served.
 */
export function loadStaticFiles(dir: string): ReadonlyMap<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return files;
  }
  for (const name of names) {
    const path = join(dir, name);
    if (!lstatSync(path).isFile()) continue;
    files.set(name, { type: TYPES[extname(name)] ?? 'application/octet-stream', body: readFileSync(path) });
  }
  return files;
}

/**
 * Decodes a percent-encoded path segment; undefined when the escapes or the UTF-8 are
 * malformed (`%`, `%c0`, `%E0%A4%A`), instead of throwing as decodeURIComponent does.
 */
export function decodePathSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}
