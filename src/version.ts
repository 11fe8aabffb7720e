import { readFileSync } from 'node:fs';

let version: string | undefined;

/** smcd's version, from package.json (next to src/ and dist/ alike). */
export function packageVersion(): string {
  version ??= String(JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version ?? '');
  return version;
}
