import { errors } from './errors.ts';
import { formDecode } from './percent.ts';

/**
 * Parses `a=1&b=2` (a binary string: one character per byte) into an ordered map.
 * A name given twice is refused: signatures and validation must see one value.
 */
export function parseForm(text: string, into = new Map<string, string>()): Map<string, string> {
  if (text === '') return into;
  for (const pair of text.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const name = formDecode(eq === -1 ? pair : pair.slice(0, eq));
    const value = formDecode(eq === -1 ? '' : pair.slice(eq + 1));
    // NUL is refused outright: no parameter needs it, and PostgreSQL cannot store it in text.
    if (name === undefined || value === undefined || name.includes('\0') || value.includes('\0')) throw errors.badEncoding();
    if (name === '') continue;
    if (into.has(name)) throw errors.duplicateParameter(name);
    into.set(name, value);
  }
  return into;
}

/** Query and body together; the same name in both is refused (API.md section 1). */
export function mergeParams(query: Map<string, string>, body: Map<string, string>): Map<string, string> {
  if (body.size === 0) return query;
  const all = new Map(query);
  for (const [name, value] of body) {
    if (all.has(name)) throw errors.duplicateParameter(name);
    all.set(name, value);
  }
  return all;
}
