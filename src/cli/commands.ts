import type { Command } from './command.ts';

/**
 * The commands, each loaded only when it runs: `smcd --help` or `smcd token list` never load
 * the server, the stores or the metrics library.
 */
export const COMMANDS = [
  { name: 'serve', summary: 'Serve the SMC-compatible API, the console and /metrics.', load: async () => (await import('./serve.ts')).serveCommand },
  {
    name: 'token',
    summary: 'Activation codes through the API: create, list, disable, delete.',
    load: async () => (await import('./token.ts')).tokenCommand,
  },
  {
    name: 'source',
    summary: 'Migration source servers through the API: list, show, modify, delete, approve, reject.',
    load: async () => (await import('./source.ts')).sourceCommand,
  },
  {
    name: 'tag',
    summary: 'Tags on source servers and activation codes through the API: add, remove, list.',
    load: async () => (await import('./tag.ts')).tagCommand,
  },
  {
    name: 'audit',
    summary: 'Audit events through the API: every change and refused import, newest first, with filters.',
    load: async () => (await import('./audit.ts')).auditCommand,
  },
  {
    name: 'webhook',
    summary: 'Webhooks through the API: create, list, delete, and the deliveries of one.',
    load: async () => (await import('./webhook.ts')).webhookCommand,
  },
  {
    name: 'agent',
    summary: 'Run on a migration source: import this machine with an activation code, then optionally send heartbeats.',
    load: async () => (await import('./agent.ts')).agentCommand,
  },
  {
    name: 'keys',
    summary: 'Manage access keys on the local store (create, list, enable, disable, delete) and rotate the master key.',
    load: async () => (await import('./keys.ts')).keysCommand,
  },
  {
    name: 'backup',
    summary: 'Write an online, consistent copy of the SQLite database to a file (mode 0600); keep the master key with it.',
    load: async () => (await import('./backup.ts')).backupCommand,
  },
  {
    name: 'restore',
    summary: 'Put a backup in place of the SQLite database, after checking the file and the master key; never under a running server.',
    load: async () => (await import('./backup.ts')).restoreCommand,
  },
] as const satisfies ReadonlyArray<{ name: string; summary: string; load: () => Promise<Command> }>;

export type CommandName = (typeof COMMANDS)[number]['name'];

export function summaryOf(name: CommandName): string {
  return COMMANDS.find((c) => c.name === name)?.summary ?? '';
}
