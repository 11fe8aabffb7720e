import type { DataDisk } from '../domain/source-server.ts';
import { MAX_TAGS_PER_RESOURCE, TAG_KEY_MAX, TAG_VALUE_MAX, type TagFilter, tagKeyProblem, tagValueProblem } from '../domain/tags.ts';
import type { TextRule } from '../domain/text-rules.ts';
import { errors } from './errors.ts';

/**
 * The declared parameters of an action. Validation, the Missing<Param> /
 * InvalidParameter.<Param> errors, the README's API reference, the OpenAPI document, the
 * CLI's flags and the typed client all come from these declarations (STYLE.md habit 1),
 * and each declaration's type gives the handler its parameter's type (ParamsOf).
 */
interface Common {
  doc: string;
  required?: boolean;
  /** The CLI flag that fills it, when not the kebab-case of its name. */
  flag?: string;
}
export interface TextDecl extends Common {
  kind: 'text';
  min?: number;
  max: number;
  rule?: TextRule;
}
export interface IntegerDecl extends Common {
  kind: 'integer';
  min: number;
  max: number;
  default?: number;
}
export interface EnumDecl<V extends string = string> extends Common {
  kind: 'enum';
  values: readonly V[];
}
/** `Name.1=a&Name.2=b`, or the JSON-array form `Name=["a","b"]`. */
export interface ListDecl extends Common {
  kind: 'list';
  maxItems: number;
  itemMax: number;
  /** The values an item may take, when they are a fixed set. */
  values?: readonly string[];
}
export interface JsonObjectDecl extends Common {
  kind: 'json-object';
  maxBytes: number;
}
/** `Name.N.Index|Path|Size`. */
export interface DisksDecl extends Common {
  kind: 'disks';
  maxItems: number;
}

/**
 * `Name.N.Key` / `Name.N.Value` (N 1-20), the SMC tag form. A Value left out is `undefined`:
 * an empty value where tags are set, any value where they filter.
 */
export interface TagsDecl extends Common {
  kind: 'tags';
}

export type ParamDecl = TextDecl | IntegerDecl | EnumDecl | ListDecl | JsonObjectDecl | DisksDecl | TagsDecl;
export type ParamDecls = Readonly<Record<string, ParamDecl>>;

type Parsed<D> = D extends TextDecl
  ? string
  : D extends IntegerDecl
    ? number
    : D extends EnumDecl<infer V>
      ? V
      : D extends ListDecl
        ? D extends { values: readonly (infer V)[] }
          ? V[]
          : string[]
        : D extends JsonObjectDecl
          ? Record<string, unknown>
          : D extends DisksDecl
            ? DataDisk[]
            : D extends TagsDecl
              ? TagFilter[]
              : never;
type AlwaysThere<D> = D extends { required: true } ? true : D extends { default: number } ? true : false;

/** What a handler receives: each declared parameter, validated, with its type; absent ones undefined. */
export type ParamsOf<P extends ParamDecls> = {
  readonly [K in keyof P]: AlwaysThere<P[K]> extends true ? Parsed<P[K]> : Parsed<P[K]> | undefined;
};

/** What a client may send for each declared parameter (numbers as numbers, lists as arrays). */
export type ParamsIn<P extends ParamDecls> = {
  readonly [K in keyof P as P[K] extends { required: true } ? K : never]: In<P[K]>;
} & {
  readonly [K in keyof P as P[K] extends { required: true } ? never : K]?: In<P[K]>;
};
type In<D> = D extends IntegerDecl
  ? number | string
  : D extends JsonObjectDecl
    ? Record<string, unknown> | string
    : D extends DisksDecl
      ? Array<{ Index: number; Path: string; Size: number }>
      : D extends TagsDecl
        ? Array<{ Key: string; Value?: string }>
        : Parsed<D>;

export const text = <const O extends Omit<TextDecl, 'kind'>>(o: O) => ({ kind: 'text', ...o }) as const;
export const integer = <const O extends Omit<IntegerDecl, 'kind'>>(o: O) => ({ kind: 'integer', ...o }) as const;
export const oneOf = <const V extends string, const O extends Omit<EnumDecl<V>, 'kind' | 'values'>>(values: readonly V[], o: O) =>
  ({ kind: 'enum', values, ...o }) as const;
export const list = <const O extends Omit<ListDecl, 'kind'>>(o: O) => ({ kind: 'list', ...o }) as const;
export const jsonObject = <const O extends Omit<JsonObjectDecl, 'kind'>>(o: O) => ({ kind: 'json-object', ...o }) as const;
export const disks = <const O extends Omit<DisksDecl, 'kind'>>(o: O) => ({ kind: 'disks', ...o }) as const;
export const tags = <const O extends Omit<TagsDecl, 'kind'>>(o: O) => ({ kind: 'tags', ...o }) as const;

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

function parseList(name: string, decl: ListDecl, raw: ReadonlyMap<string, string>): string[] | undefined {
  const items: string[] = [];
  const whole = raw.get(name);
  if (whole !== undefined) {
    // The JSON-array form `Name=["a","b"]`, which newer SDKs send.
    let parsed: unknown;
    try {
      parsed = JSON.parse(whole);
    } catch {
      parsed = undefined;
    }
    if (Array.isArray(parsed) && parsed.every((v): v is string => typeof v === 'string')) items.push(...parsed);
    else if (whole !== '') items.push(whole);
  }
  const prefix = `${name}.`;
  const numbered: Array<[number, string]> = [];
  for (const [key, value] of raw) {
    if (!key.startsWith(prefix)) continue;
    const n = key.slice(prefix.length);
    if (!/^[1-9]\d{0,3}$/.test(n)) throw errors.invalidParameter(name, `list items are named ${name}.1, ${name}.2, ...`);
    numbered.push([Number(n), value]);
  }
  numbered.sort((a, b) => a[0] - b[0]);
  for (const [, value] of numbered) items.push(value);
  if (whole === undefined && numbered.length === 0) return undefined;
  if (items.length > decl.maxItems) throw errors.invalidParameter(name, `at most ${decl.maxItems} items.`);
  for (const item of items) {
    if (item.length === 0 || codePoints(item) > decl.itemMax) throw errors.invalidParameter(name, `each item is 1 to ${decl.itemMax} characters.`);
    if (decl.values && !decl.values.includes(item)) throw errors.invalidParameter(name, `each item is one of ${decl.values.join(', ')}.`);
  }
  return items;
}

/** `<Name>.N.Index|Path|Size`, compiled once per declared name. */
const diskPatterns = new Map<string, RegExp>();

/** A JSON array, or undefined for anything else (not JSON, or JSON of another kind). */
function jsonArray(text: string): unknown[] | undefined {
  try {
    const parsed: unknown = JSON.parse(text);
    return Array.isArray(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** The JSON form `DataDisk=[{"Index":1,"Path":"/data","Size":100}]`, as Name.N.Field entries. */
function disksFromJson(name: string, text: string): Map<string, string> {
  const parsed = jsonArray(text);
  if (!parsed) throw errors.invalidParameter(name, 'a JSON array of {"Index","Path","Size"} objects, or DataDisk.N.Index, .Path and .Size.');
  const entries = new Map<string, string>();
  parsed.forEach((disk: unknown, i) => {
    if (disk === null || typeof disk !== 'object' || Array.isArray(disk)) throw errors.invalidParameter(name, 'each disk is a JSON object.');
    for (const [field, value] of Object.entries(disk)) {
      if (typeof value !== 'string' && typeof value !== 'number') throw errors.invalidParameter(name, `${field} must be a string or a number.`);
      entries.set(`${name}.${i + 1}.${field}`, String(value));
    }
  });
  return entries;
}

function parseDisks(name: string, decl: DisksDecl, given: ReadonlyMap<string, string>): DataDisk[] | undefined {
  const whole = given.get(name);
  if (whole !== undefined && whole !== '' && [...given.keys()].some((k) => k.startsWith(`${name}.`)))
    throw errors.invalidParameter(name, `give the disks either as ${name}.N fields or as one JSON array, not both.`);
  const raw = whole === undefined || whole === '' ? given : disksFromJson(name, whole);
  const byN = new Map<number, Partial<Record<'Index' | 'Path' | 'Size', string>>>();
  const prefix = `${name}.`;
  for (const [key, value] of raw) {
    if (!key.startsWith(prefix)) continue;
    let pattern = diskPatterns.get(name);
    if (!pattern) {
      pattern = new RegExp(`^${name}\\.([1-9]\\d{0,3})\\.(Index|Path|Size)$`);
      diskPatterns.set(name, pattern);
    }
    const m = pattern.exec(key);
    const field = m?.[2];
    if (!m || (field !== 'Index' && field !== 'Path' && field !== 'Size'))
      throw errors.invalidParameter(name, `items are ${name}.N.Index, ${name}.N.Path and ${name}.N.Size.`);
    const n = Number(m[1]);
    const entry = byN.get(n) ?? {};
    entry[field] = value;
    byN.set(n, entry);
  }
  if (byN.size === 0) return undefined;
  if (byN.size > decl.maxItems) throw errors.invalidParameter(name, `at most ${decl.maxItems} disks.`);
  return [...byN.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([n, d]) => {
      const path = d.Path ?? '';
      if (codePoints(path) > 256) throw errors.invalidParameter(`${name}.${n}.Path`, 'at most 256 characters.');
      return {
        index: d.Index === undefined ? n : parseInteger(`${name}.${n}.Index`, d.Index, 0, 1024),
        path,
        size: d.Size === undefined ? 0 : parseInteger(`${name}.${n}.Size`, d.Size, 0, 1_048_576),
      };
    });
}

/** The JSON form `Tag=[{"Key":"env","Value":"prod"}]`, as Name.N.Key/Value entries. */
function tagsFromJson(name: string, text: string): Map<string, string> {
  const parsed = jsonArray(text);
  if (!parsed) throw errors.invalidParameter('TagKey', `a JSON array of {"Key","Value"} objects, or ${name}.N.Key and ${name}.N.Value.`);
  const entries = new Map<string, string>();
  parsed.forEach((tag: unknown, i) => {
    if (tag === null || typeof tag !== 'object' || Array.isArray(tag)) throw errors.invalidParameter('TagKey', 'each tag is a JSON object.');
    for (const [field, value] of Object.entries(tag)) {
      if (typeof value !== 'string') throw errors.invalidParameter('TagKey', `${field} must be a string.`);
      entries.set(`${name}.${i + 1}.${field}`, value);
    }
  });
  return entries;
}

const TAG_FIELD = /^([1-9]\d{0,3})\.(Key|Value)$/;

/**
 * `Tag.N.Key` / `Tag.N.Value`. Errors use SMC's codes: InvalidParameter.TagKey / .TagValue for a
 * broken tag, InvalidParameter.TagCount for more than 20 (API.md 5.3). A key given twice keeps
 * its last value, as tagging an existing key replaces its value.
 */
function parseTags(name: string, given: ReadonlyMap<string, string>): TagFilter[] | undefined {
  const prefix = `${name}.`;
  const whole = given.get(name);
  if (whole !== undefined && whole !== '' && [...given.keys()].some((k) => k.startsWith(prefix)))
    throw errors.invalidParameter('TagKey', `give the tags either as ${name}.N fields or as one JSON array, not both.`);
  const raw = whole === undefined || whole === '' ? given : tagsFromJson(name, whole);
  const byN = new Map<number, { Key?: string; Value?: string }>();
  for (const [key, value] of raw) {
    if (!key.startsWith(prefix)) continue;
    const m = TAG_FIELD.exec(key.slice(prefix.length));
    if (!m) throw errors.invalidParameter('TagKey', `tags are sent as ${name}.N.Key and ${name}.N.Value, N from 1 to ${MAX_TAGS_PER_RESOURCE}.`);
    const n = Number(m[1]);
    if (n > MAX_TAGS_PER_RESOURCE)
      throw errors.invalidParameter('TagCount', `at most ${MAX_TAGS_PER_RESOURCE} tags (${name}.1 to ${name}.${MAX_TAGS_PER_RESOURCE}).`);
    const entry = byN.get(n) ?? {};
    entry[m[2] as 'Key' | 'Value'] = value;
    byN.set(n, entry);
  }
  if (byN.size === 0) return undefined;
  const out = new Map<string, TagFilter>();
  for (const [n, t] of [...byN.entries()].sort((a, b) => a[0] - b[0])) {
    const key = t.Key;
    if (key === undefined || key === '')
      throw errors.invalidParameter('TagKey', `${name}.${n}.Key is required with ${name}.${n}.Value and is 1 to ${TAG_KEY_MAX} characters.`);
    if (codePoints(key) > TAG_KEY_MAX) throw errors.invalidParameter('TagKey', `${name}.${n}.Key must be 1 to ${TAG_KEY_MAX} characters long.`);
    const keyProblem = tagKeyProblem(key);
    if (keyProblem) throw errors.invalidParameter('TagKey', `${name}.${n}.Key ${keyProblem}`);
    if (t.Value !== undefined) {
      if (codePoints(t.Value) > TAG_VALUE_MAX)
        throw errors.invalidParameter('TagValue', `${name}.${n}.Value must be 0 to ${TAG_VALUE_MAX} characters long.`);
      const valueProblem = tagValueProblem(t.Value);
      if (valueProblem) throw errors.invalidParameter('TagValue', `${name}.${n}.Value ${valueProblem}`);
    }
    out.delete(key);
    out.set(key, t.Value === undefined ? { key } : { key, value: t.Value });
  }
  return [...out.values()];
}

function parseJsonObject(name: string, raw: string, maxBytes: number): Record<string, unknown> {
  if (Buffer.byteLength(raw) > maxBytes) throw errors.invalidParameter(name, `at most ${maxBytes} bytes.`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw errors.invalidParameter(name, 'must be a JSON object.');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw errors.invalidParameter(name, 'must be a JSON object.');
  return { ...parsed };
}

/** One declared parameter from the raw request: its value, or undefined when not given. */
function parseOne(name: string, decl: ParamDecl, raw: ReadonlyMap<string, string>): unknown {
  if (decl.kind === 'list') return parseList(name, decl, raw);
  if (decl.kind === 'disks') return parseDisks(name, decl, raw);
  if (decl.kind === 'tags') return parseTags(name, raw);
  const value = raw.get(name);
  // An empty optional value means "not given", as the Alibaba SDKs send unset fields.
  if (value === undefined || (value === '' && (decl.kind !== 'text' || (decl.min ?? 0) > 0 || decl.required))) {
    return decl.kind === 'integer' ? decl.default : undefined;
  }
  switch (decl.kind) {
    case 'text': {
      const len = codePoints(value);
      const min = decl.min ?? 0;
      if (len < min || len > decl.max) throw errors.invalidParameter(name, `must be ${min} to ${decl.max} characters long.`);
      const broken = decl.rule?.check(value);
      if (broken) throw errors.invalidParameter(name, broken);
      return value;
    }
    case 'integer':
      return parseInteger(name, value, decl.min, decl.max);
    case 'enum':
      if (!decl.values.includes(value)) throw errors.invalidParameter(name, `must be one of ${decl.values.join(', ')}.`);
      return value;
    case 'json-object':
      return parseJsonObject(name, value, decl.maxBytes);
  }
}

/** Validates the raw request parameters against an action's declarations, in declaration order. */
export function validateParams<P extends ParamDecls>(decls: P, raw: ReadonlyMap<string, string>): ParamsOf<P> {
  const out: Record<string, unknown> = {};
  for (const [name, decl] of Object.entries(decls)) {
    const value = parseOne(name, decl, raw);
    if (value === undefined && decl.required) throw errors.missingParameter(name);
    out[name] = value;
  }
  // The loop above gave every declared name its parsed value: the shape ParamsOf<P> describes.
  return out as ParamsOf<P>;
}
