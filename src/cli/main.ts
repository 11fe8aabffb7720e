import { StartupError } from '../bootstrap.ts';
import { agentCommand } from './agent.ts';
import { type Command, EXIT, UsageError, helpText, parseCommand } from './command.ts';
import { keysCommand } from './keys.ts';
import { serveCommand } from './serve.ts';
import { sourceCommand } from './source.ts';
import { tokenCommand } from './token.ts';

const COMMANDS: Command[] = [serveCommand, keysCommand, tokenCommand, sourceCommand, agentCommand];

function topHelp(): string {
  const lines = ['smcd: self-hosted activation codes for server migration (Alibaba Cloud SMC API 2019-06-01).', '', 'Commands:'];
  for (const c of COMMANDS) lines.push(`  ${c.name.padEnd(10)} ${c.summary}`);
  lines.push('', 'Run "smcd <command> --help" for its options and an example.');
  return `${lines.join('\n')}\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === 'help') {
    process.stdout.write(topHelp());
    return name ? EXIT.ok : EXIT.usage;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) {
    process.stderr.write(`smcd: unknown command "${name}"\n\n${topHelp()}`);
    return EXIT.usage;
  }
  try {
    const { values, positionals, help } = parseCommand(cmd, rest);
    if (help) {
      process.stdout.write(helpText(cmd));
      return EXIT.ok;
    }
    return await cmd.run(values, positionals);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`smcd ${cmd.name}: ${err.message}\n\n${helpText(cmd)}`);
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

process.exitCode = await main(process.argv.slice(2));
