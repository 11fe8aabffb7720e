import { StartupError } from '../bootstrap.ts';
import { packageVersion } from '../version.ts';
import { EXIT, helpText, parseCommand, UsageError } from './command.ts';
import { COMMANDS } from './commands.ts';

function topHelp(): string {
  const lines = [
    `smcd ${packageVersion()}: self-hosted activation codes for server migration (Alibaba Cloud SMC API 2019-06-01).`,
    '',
    'Usage: smcd <command> [options]',
    '',
    'Commands:',
  ];
  for (const c of COMMANDS) lines.push(`  ${c.name.padEnd(10)} ${c.summary}`);
  lines.push('', 'Run "smcd help <command>" or "smcd <command> --help" for its options and an example; "smcd --version" for the version.');
  return `${lines.join('\n')}\n`;
}

const find = (name: string) => COMMANDS.find((c) => c.name === name);

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-v' || name === 'version') {
    process.stdout.write(`smcd ${packageVersion()}\n`);
    return EXIT.ok;
  }
  if (!name || name === '--help' || name === '-h' || (name === 'help' && rest.length === 0)) {
    process.stdout.write(topHelp());
    return name ? EXIT.ok : EXIT.usage;
  }
  if (name === 'help') {
    const entry = find(rest[0] ?? '');
    if (!entry) {
      process.stderr.write(`smcd: unknown command "${rest[0]}"; see smcd --help\n`);
      return EXIT.usage;
    }
    process.stdout.write(helpText(await entry.load()));
    return EXIT.ok;
  }
  const entry = find(name);
  if (!entry) {
    process.stderr.write(`smcd: unknown command "${name}"; see smcd --help\n`);
    return EXIT.usage;
  }
  const cmd = await entry.load();
  try {
    const { values, positionals, help } = parseCommand(cmd, rest);
    if (help) {
      process.stdout.write(helpText(cmd));
      return EXIT.ok;
    }
    return await cmd.run(values, positionals);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`smcd ${cmd.name}: ${err.message}; see smcd ${cmd.name} --help\n`);
      return EXIT.usage;
    }
    if (err instanceof StartupError) {
      process.stderr.write(`smcd ${cmd.name}: ${err.message}\n`);
      return EXIT.failed;
    }
    // Unexpected: one line, never a stack trace, unless asked for (SMCD_DEBUG=1).
    if (process.env.SMCD_DEBUG) process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
    process.stderr.write(`smcd ${cmd.name}: unexpected error: ${(err as Error)?.message ?? String(err)} (SMCD_DEBUG=1 shows details)\n`);
    return EXIT.failed;
  }
}
