import { errors } from './errors.ts';

/**
 * Declared parameters of an action. Validation, the Missing<Param> /
 * InvalidParameter.<Param> errors and the README's API reference all come from
 * these declarations (STYLE.md habit 1).
 */
export type ParamDecl =
  | { name: string; type: 'string'; required?: boolean; doc: string; min?: number; max: number; rule?: TextRule }
  | { name: string; type: 'integer'; required?: boolean; doc: string; min: number; max: number; default?: number }
  | { name: string; type: 'enum'; required?: boolean; doc: string; values: readonly string[] }
  | { name: string; type: 'list'; required?: boolean; doc: string; maxItems: number; itemMax: number }
  | { name: string; type: 'json-object'; required?: boolean; doc: string; maxBytes: number }
  | { name: string; type: 'disks'; required?: boolean; doc: string; maxItems: number };

/** A rule on top of the length: returns the broken rule's description, or null. */
export interface TextRule {
  describe: string;
  check: (value: string) => string | null;
}

export interface DataDiskParam {
  index: number;
  path: string;
  size: number;
}

export type ParamValue = string | number | string[] | DataDiskParam[] | Record<string, unknown>;
export type Params = Record<string, ParamValue | undefined>;

const INTEGER = /^[+-]?\d{1,15}$/;

/** Length in Unicode code points, as SMC counts names (a CJK character is one). */
export const codePoints = (s: string): number => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

function parseInteger(name: string, raw: string, min: number, max: number): number {
  if (!INTEGER.test(raw)) throw errors.invalidParameter(name, `must be an integer from ${min} to ${max}.`);
  const n = Number(raw);
  if (n < min || n > max) throw errors.invalidParameter(name, `must be an integer from ${min} to ${max}.`);
  return n;
}

function parseList(decl: Extract<ParamDecl, { type: 'list' }>, raw: Map<string, string>): string[] | undefined {
  const items: string[] = [];
  const whole = raw.get(decl.name);
  if (whole !== undefined) {
    // The JSON-array form `Name=["a","b"]`, which newer SDKs send.
    let parsed: unknown;
    try {
      parsed = JSON.parse(whole);
    } catch {
      parsed = undefined;
    }
    if (Array.isArray(parsed) && parsed.every((v) => typeof v === 'string')) items.push(...(parsed as string[]));
    else if (whole !== '') items.push(whole);
  }
  const prefix = `${decl.name}.`;
  const numbered: Array<[number, string]> = [];
  for (const [key, value] of raw) {
    if (!key.startsWith(prefix)) continue;
    const n = key.slice(prefix.length);
    if (!/^[1-9]\d{0,3}$/.test(n)) throw errors.invalidParameter(decl.name, `list items are named ${decl.name}.1, ${decl.name}.2, ...`);
    numbered.push([Number(n), value]);
  }
  numbered.sort((a, b) => a[0] - b[0]);
  for (const [, value] of numbered) items.push(value);
  if (whole === undefined && numbered.length === 0) return undefined;
  if (items.length > decl.maxItems) throw errors.invalidParameter(decl.name, `at most ${decl.maxItems} items.`);
  for (const item of items) {
    if (item.length === 0 || codePoints(item) > decl.itemMax)
      throw errors.invalidParameter(decl.name, `each item is 1 to ${decl.itemMax} characters.`);
  }
  return items;
}

/** `<Name>.N.Index|Path|Size`, compiled once per declared name. */
const diskPatterns = new Map<string, RegExp>();

function parseDisks(decl: Extract<ParamDecl, { type: 'disks' }>, raw: Map<string, string>): DataDiskParam[] | undefined {
  const byN = new Map<number, Partial<Record<'Index' | 'Path' | 'Size', string>>>();
  const prefix = `${decl.name}.`;
  for (const [key, value] of raw) {
    if (!key.startsWith(prefix)) continue;
    let pattern = diskPatterns.get(decl.name);
    if (!pattern) {
      pattern = new RegExp(`^${decl.name}\\.([1-9]\\d{0,3})\\.(Index|Path|Size)$`);
      diskPatterns.set(decl.name, pattern);
    }
    const m = pattern.exec(key);
    if (!m) throw errors.invalidParameter(decl.name, `items are ${decl.name}.N.Index, ${decl.name}.N.Path and ${decl.name}.N.Size.`);
    const n = Number(m[1]);
    const entry = byN.get(n) ?? {};
    entry[m[2] as 'Index' | 'Path' | 'Size'] = value;
    byN.set(n, entry);
  }
  if (byN.size === 0) return undefined;
  if (byN.size > decl.maxItems) throw errors.invalidParameter(decl.name, `at most ${decl.maxItems} disks.`);
  return [...byN.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([n, d]) => {
      const path = d.Path ?? '';
      if (codePoints(path) > 256) throw errors.invalidParameter(`${decl.name}.${n}.Path`, 'at most 256 characters.');
      return {
        index: d.Index === undefined ? n : parseInteger(`${decl.name}.${n}.Index`, d.Index, 0, 1024),
        path,
        size: d.Size === undefined ? 0 : parseInteger(`${decl.name}.${n}.Size`, d.Size, 0, 1_048_576),
      };
    });
}

function parseJsonObject(name: string, raw: string, maxBytes: number): Record<string, unknown> {
  if (Buffer.byteLength(raw) > maxBytes) throw errors.invalidParameter(name, `at most ${maxBytes} bytes.`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw errors.invalidParameter(name, 'must be a JSON object.');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    throw errors.invalidParameter(name, 'must be a JSON object.');
  return parsed as Record<string, unknown>;
}

/** Validates the raw request parameters against an action's declarations. */
export function validateParams(decls: readonly ParamDecl[], raw: Map<string, string>): Params {
  const out: Params = {};
  for (const decl of decls) {
    if (decl.type === 'list') {
      out[decl.name] = parseList(decl, raw);
      if (decl.required && !out[decl.name]) throw errors.missingParameter(decl.name);
      continue;
    }
    if (decl.type === 'disks') {
      out[decl.name] = parseDisks(decl, raw);
      continue;
    }
    const value = raw.get(decl.name);
    // An empty optional value means "not given", as the Alibaba SDKs send unset fields.
    if (value === undefined || (value === '' && (decl.type !== 'string' || (decl.min ?? 0) > 0 || decl.required))) {
      if (decl.required) throw errors.missingParameter(decl.name);
      if (decl.type === 'integer' && decl.default !== undefined) out[decl.name] = decl.default;
      continue;
    }
    switch (decl.type) {
      case 'string': {
        if (value === '' && decl.required) throw errors.missingParameter(decl.name);
        const len = codePoints(value);
        const min = decl.min ?? 0;
        if (len < min || len > decl.max) throw errors.invalidParameter(decl.name, `must be ${min} to ${decl.max} characters long.`);
        const broken = decl.rule?.check(value);
        if (broken) throw errors.invalidParameter(decl.name, broken);
        out[decl.name] = value;
        break;
      }
      case 'integer':
        out[decl.name] = parseInteger(decl.name, value, decl.min, decl.max);
        break;
      case 'enum':
        if (!decl.values.includes(value)) throw errors.invalidParameter(decl.name, `must be one of ${decl.values.join(', ')}.`);
        out[decl.name] = value;
        break;
      case 'json-object':
        out[decl.name] = parseJsonObject(decl.name, value, decl.maxBytes);
        break;
    }
  }
  return out;
}
