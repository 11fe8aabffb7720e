import { join } from 'node:path';
import type { OptionSpec } from './command.ts';

/** --data-dir and --database, shared by every command that opens the store. */
export const dataOptions: Record<string, OptionSpec> = {
  'data-dir': {
    type: 'string',
    description: 'Directory for the SQLite database, master key and root credentials.',
    env: 'SMCD_DATA_DIR',
    default: './data',
  },
  database: {
    type: 'string',
    description: 'sqlite:<path> or postgres://user@host:port/db.',
    env: 'SMCD_DATABASE_URL',
    default: 'sqlite:<data-dir>/smcd.db',
  },
};

export function databaseUrl(values: Record<string, unknown>): string {
  const url = String(values.database);
  return url === 'sqlite:<data-dir>/smcd.db' ? `sqlite:${join(String(values['data-dir']), 'smcd.db')}` : url;
}
