import { type ParseArgsConfig, parseArgs } from 'node:util';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>[string] & {
  description: string;
  env?: string;
  /** Other variables read when `env` is unset (older names). */
  envAliases?: readonly string[];
  default?: string;
};

export interface Command {
  name: string;
  summary: string;
  usage: string;
  example: string;
  options: Record<string, OptionSpec>;
  /** Returns the process exit code. */
  run(values: Record<string, string | boolean | string[] | undefined>, positionals: string[]): Promise<number>;
}

/** Exit codes: 0 success, 1 the API or the store refused, 2 the command line is wrong. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

export class UsageError extends Error {
  override name = 'UsageError';
}

export function helpText(cmd: Command): string {
  const lines = [`${cmd.summary}`, '', `Usage: ${cmd.usage}`, '', 'Options:'];
  for (const [name, spec] of Object.entries(cmd.options)) {
    const flag = `--${name}${spec.type === 'string' ? ' <value>' : ''}`;
    const extra = [spec.env ? `env ${spec.env}` : '', spec.default !== undefined ? `default ${spec.default}` : ''].filter(Boolean).join('; ');
    lines.push(`  ${flag.padEnd(28)} ${spec.description}${extra ? ` (${extra})` : ''}`);
  }
  lines.push(`  ${'--help'.padEnd(28)} Show this help.`, '', 'Example:', `  ${cmd.example}`);
  return `${lines.join('\n')}\n`;
}

/** Parses argv for one command; flags win over the environment, which wins over defaults. */
export function parseCommand(cmd: Command, argv: string[], env = process.env) {
  const options = Object.fromEntries(
    Object.entries(cmd.options).map(([name, spec]) => [name, spec.multiple ? { type: spec.type, multiple: true } : { type: spec.type }]),
  ) as ParseArgsConfig['options'];
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(parseArgsProblem(err));
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  for (const [name, spec] of Object.entries(cmd.options)) {
    for (const variable of spec.env ? [spec.env, ...(spec.envAliases ?? [])] : []) {
      if (values[name] === undefined && env[variable] !== undefined && env[variable] !== '') values[name] = env[variable];
    }
    if (values[name] === undefined && spec.default !== undefined) values[name] = spec.default;
  }
  return { values, positionals: parsed.positionals, help: values.help === true };
}

/** Node's parseArgs explains at length; one line says the same. */
function parseArgsProblem(err: unknown): string {
  const message = (err as Error).message;
  const option = /'(-{1,2}[^']+)'/.exec(message)?.[1];
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown flag ${option ?? ''}`.trim();
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') return `${option ?? 'a flag'} needs a value`;
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return `unexpected argument ${option ?? ''}`.trim();
  return message.split('. ')[0] ?? message;
}

export function intOption(values: Record<string, unknown>, name: string, min: number, max: number): number {
  const raw = String(values[name]);
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}`);
  return Number(raw);
}
