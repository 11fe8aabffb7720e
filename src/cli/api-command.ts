import { type ActionName, actionNamed } from '../actions/index.ts';
import type { ResponseOf } from '../client/rpc-client.ts';
import { ApiError } from '../rpc/errors.ts';
import { type ParamDecl, type ParamDecls, validateParams } from '../rpc/params.ts';
import { apiContext, apiOptions, expectPositionals, expectSomePositionals, onlyFlags, reportingApiErrors, type Values } from './api-options.ts';
import { type Command, type OptionSpec, UsageError } from './command.ts';

/** `TimeToLiveInDays` → `time-to-live-in-days`: a parameter's flag unless it declares another. */
const kebab = (name: string) => name.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
export const flagOf = (name: string, decl: ParamDecl) => decl.flag ?? kebab(name);

/** A `true|false` parameter is a switch on the command line: `--require-approval` sends true. */
const isSwitch = (decl: ParamDecl) =>
  decl.kind === 'enum' && decl.values.length === 2 && decl.values.includes('true') && decl.values.includes('false');
/** Flags given once per value: lists and tags (`--tag env=prod --tag team=db`). */
const isRepeated = (decl: ParamDecl) => decl.kind === 'list' || decl.kind === 'tags';

const placeholder = (decl: ParamDecl) =>
  decl.kind === 'integer'
    ? 'N'
    : decl.kind === 'enum'
      ? decl.values.join('|')
      : decl.kind === 'list'
        ? decl.values
          ? 'TYPE'
          : 'ID'
        : decl.kind === 'tags'
          ? 'KEY=VALUE'
          : 'TEXT';

/** `--tag env=prod` → Tag.N.Key=env, Tag.N.Value=prod; `--tag env` gives the key alone (any value, where it filters). */
function setTags(raw: Map<string, string>, name: string, given: string[]): void {
  for (const [i, item] of given.entries()) {
    const at = item.indexOf('=');
    raw.set(`${name}.${i + 1}.Key`, at < 0 ? item : item.slice(0, at));
    if (at >= 0) raw.set(`${name}.${i + 1}.Value`, item.slice(at + 1));
  }
}

export interface ApiCall<N extends ActionName> {
  client: ReturnType<typeof apiContext>['client'];
  output: 'table' | 'json';
  endpoint: string;
  values: Values;
  /** The positional argument, when the subcommand takes one. */
  positional: string | undefined;
  /** Every positional argument (several for a list parameter). */
  positionals: string[];
  /** The call with the parameters the flags and the positional argument gave. */
  call(): Promise<ResponseOf<N>>;
}

/**
 * One subcommand that calls one action. Its flags, their help, their checks and the usage
 * line come from the action's parameter declarations, so they cannot drift from the server.
 */
export interface Subcommand<N extends ActionName = ActionName> {
  name: string;
  action: N;
  summary: string;
  /** The parameter the positional argument fills (`token disable <access-token-id>`). */
  positional?: string;
  /** The positional parameter is a list and takes one or more arguments (`source approve <source-id>...`). */
  variadic?: boolean;
  /** The declared parameters offered as flags; default: every one but the positional. */
  flags?: readonly string[];
  /** Flag names that must come with at least one value (`source modify` needs --name or --description). */
  needsOneOf?: readonly string[];
  run(api: ApiCall<N>): Promise<number>;
}

/** Declares a subcommand, keeping its action's name as a type for the typed call. */
export const subcommand = <N extends ActionName>(s: Subcommand<N>): Subcommand => s as unknown as Subcommand;

function offered(sub: Subcommand): Array<[string, ParamDecl]> {
  const params: ParamDecls = actionNamed(sub.action).params;
  const names = sub.flags ?? Object.keys(params).filter((n) => n !== sub.positional);
  return names.map((n) => {
    const decl = params[n];
    if (!decl) throw new Error(`${sub.action} declares no ${n}`);
    return [n, decl];
  });
}

/**
 * The raw request parameters the flags give. Numbers and choices are checked against the
 * declarations here (a usage error names the flag, before any request); text rules are the
 * server's to apply, so its SMC error comes back as it would to any client.
 */
const positionalIsList = (sub: Subcommand) => sub.positional !== undefined && sub.variadic === true;

function paramsFromFlags(sub: Subcommand, values: Values, positional: string[]): Map<string, string> {
  const raw = new Map<string, string>();
  const decls: Record<string, ParamDecl> = {};
  for (const [name, decl] of offered(sub)) {
    if (decl.kind === 'integer' || decl.kind === 'enum') decls[name] = decl;
    const v = values[flagOf(name, decl)];
    if (v === undefined || v === false) continue;
    if (decl.kind === 'tags' && Array.isArray(v)) setTags(raw, name, v);
    else if (Array.isArray(v)) for (const [i, item] of v.entries()) raw.set(`${name}.${i + 1}`, item);
    else raw.set(name, String(v));
  }
  if (sub.positional !== undefined && positional.length > 0) {
    if (positionalIsList(sub)) for (const [i, item] of positional.entries()) raw.set(`${sub.positional}.${i + 1}`, item);
    else raw.set(sub.positional, positional[0] ?? '');
  }
  try {
    validateParams(decls, raw);
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    const param = /^(?:Missing|InvalidParameter\.)([A-Za-z]+)/.exec(err.code)?.[1] ?? '';
    const decl = decls[param];
    const what = decl ? `--${flagOf(param, decl)}` : param;
    throw new UsageError(`${what} ${err.message.replace(/^The specified parameter \S+ is not valid: /, '')}`);
  }
  return raw;
}

function usageLine(sub: Subcommand): string {
  const flags = offered(sub).map(([name, decl]) =>
    isSwitch(decl) ? `[--${flagOf(name, decl)}]` : `[--${flagOf(name, decl)} ${placeholder(decl)}]${isRepeated(decl) ? '...' : ''}`,
  );
  const arg = sub.positional ? `<${kebab(sub.positional)}>${positionalIsList(sub) ? '...' : ''}` : '';
  return [sub.name, arg, ...flags].filter(Boolean).join(' ');
}

/** A command whose subcommands each call one action through the public API, signed like any client. */
export function apiCommand(spec: {
  name: string;
  summary: string;
  example: string;
  subcommands: Subcommand[];
  /** The subcommand run when none is named (`smcd audit` lists). */
  defaultSubcommand?: string;
}): Command {
  const options: Record<string, OptionSpec> = { ...apiOptions };
  const docs = new Map<string, string[]>();
  for (const sub of spec.subcommands) {
    for (const [name, decl] of offered(sub)) {
      const flag = flagOf(name, decl);
      options[flag] = isSwitch(decl)
        ? { type: 'boolean', description: '' }
        : isRepeated(decl)
          ? { type: 'string', multiple: true, description: '' }
          : { type: 'string', description: '' };
      docs.set(flag, [...(docs.get(flag) ?? []), `${sub.name}: ${decl.doc}`]);
    }
  }
  for (const [flag, lines] of docs) {
    const option = options[flag];
    if (option) option.description = lines.join(' ');
  }
  const allFlags = [...docs.keys()];
  return {
    name: spec.name,
    summary: spec.summary,
    usage: [`smcd ${spec.name} <subcommand> [options]`, '', ...spec.subcommands.flatMap((s) => [`  ${usageLine(s)}`, `      ${s.summary}`])].join(
      '\n',
    ),
    example: spec.example,
    options,
    async run(values, positionals) {
      if (positionals.length === 0 && spec.defaultSubcommand) positionals = [spec.defaultSubcommand];
      const name = positionals[0];
      const sub = spec.subcommands.find((s) => s.name === name);
      const all = spec.subcommands.map((s) => s.name);
      const names = `${all.slice(0, -1).join(', ')} or ${all.at(-1)}`;
      if (!sub) throw new UsageError(name ? `unknown subcommand "${name}"; expected ${names}` : `expected ${names}`);
      onlyFlags(
        values,
        `${spec.name} ${sub.name}`,
        offered(sub).map(([n, d]) => flagOf(n, d)),
        allFlags,
      );
      const positional = positionalIsList(sub)
        ? expectSomePositionals(positionals, kebab(sub.positional ?? ''), `${spec.name} ${sub.name}`)
        : expectPositionals(positionals, sub.positional ? [kebab(sub.positional)] : [], `${spec.name} ${sub.name}`);
      if (sub.needsOneOf?.every((f) => values[f] === undefined))
        throw new UsageError(`${spec.name} ${sub.name} needs ${sub.needsOneOf.map((f) => `--${f}`).join(' or ')}`);
      const raw = paramsFromFlags(sub, values, positional);
      const { client, output, endpoint } = apiContext(values);
      const wire = Object.fromEntries(raw);
      return reportingApiErrors(() =>
        sub.run({
          client,
          output,
          endpoint,
          values,
          positional: positional[0],
          positionals: positional,
          call: () => client.send(sub.action, wire) as Promise<ResponseOf<typeof sub.action>>,
        }),
      );
    },
  };
}
