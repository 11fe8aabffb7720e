import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

import { explainFailure } from '../agent/explain.ts';
import { sendHeartbeats } from '../agent/heartbeats.ts';
import { importThisMachine } from '../agent/import.ts';
import { type AgentState, loadState, statePath } from '../agent/state-file.ts';
import { descriptionRule, nameRule } from '../domain/text-rules.ts';
import { type Command, EXIT, UsageError } from './command.ts';
import { summaryOf } from './commands.ts';

const DEFAULT_STATE_DIR = '~/.smcd-agent';

/** `~` and `~/x` as a shell would expand them, for the default and for values from the environment. */
function expandHome(path: string): string {
  if (path === '~') return homedir();
  if (path.startsWith('~/')) return join(homedir(), path.slice(2));
  return resolve(path);
}

function optional(values: Record<string, unknown>, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function checkEndpoint(raw: string | undefined): string {
  if (!raw) throw new UsageError('--endpoint (or SMCD_ENDPOINT) is required: the URL of the smcd server, e.g. https://smcd.example.com');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`--endpoint must be an http:// or https:// URL, got "${raw}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--endpoint must be an http:// or https:// URL, got "${raw}"`);
  return raw.replace(/\/+$/, '');
}

function checkText(what: string, value: string | undefined, min: number, max: number, rule: typeof nameRule): void {
  if (value === undefined) return;
  const length = Array.from(value).length;
  if (length < min || length > max) throw new UsageError(`--${what} must be ${min}-${max} characters`);
  const broken = rule.check(value);
  if (broken) throw new UsageError(`--${what} ${broken}`);
}

const say = (line: string) => process.stdout.write(`${line}\n`);
const complain = (line: string) => process.stderr.write(`smcd agent: ${line}\n`);

/**
 * The migration-source side: imports the machine it runs on with an activation code and, with
 * --daemon, keeps it Available by heartbeats. The code may come from the environment so that it
 * never shows in the process list; neither it nor the source key secret is ever printed.
 */
export const agentCommand: Command = {
  name: 'agent',
  summary: summaryOf('agent'),
  usage:
    'smcd agent import --endpoint URL --token-id ID --token-code CODE [--name N] [--description D] [--state-dir DIR] [--daemon]\n' +
    '       smcd agent import --daemon [--state-dir DIR]    (resume heartbeats with the key saved by an earlier import)',
  example: 'SMCD_CODE_ID=at-xxxxxxxxxxxxxxxxxxxx SMCD_CODE=... smcd agent import --endpoint https://smcd.example.com --daemon',
  options: {
    endpoint: { type: 'string', description: 'URL of the smcd server.', env: 'SMCD_ENDPOINT' },
    'token-id': { type: 'string', description: 'Activation code id (AccessTokenId, at-...).', env: 'SMCD_CODE_ID', envAliases: ['SMCD_TOKEN_ID'] },
    'token-code': {
      type: 'string',
      description: 'Activation code (AccessTokenCode); prefer the environment variable, which stays out of the process list.',
      env: 'SMCD_CODE',
      envAliases: ['SMCD_TOKEN_CODE'],
    },
    name: { type: 'string', description: 'Source name (default: the server uses the hostname).' },
    description: { type: 'string', description: 'Source description.' },
    'state-dir': {
      type: 'string',
      description: `Where the machine id and the source key (source.json, mode 0600) are kept.`,
      env: 'SMCD_AGENT_STATE_DIR',
      default: DEFAULT_STATE_DIR,
    },
    'machine-id': {
      type: 'string',
      description: 'Use this MachineId instead of /etc/machine-id (cloned machines, tests).',
      env: 'SMCD_AGENT_MACHINE_ID',
    },
    daemon: { type: 'boolean', description: 'After importing, send heartbeats at the rate the server names until SIGTERM or SIGINT.' },
  },
  async run(values, positionals) {
    const [sub, ...extra] = positionals;
    if (sub !== 'import') throw new UsageError(sub ? `unknown subcommand "${sub}": expected "import"` : 'expected a subcommand: import');
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);

    const stateDir = expandHome(String(values['state-dir']));
    const tokenId = optional(values, 'token-id');
    const tokenCode = optional(values, 'token-code');
    const name = optional(values, 'name');
    const description = typeof values.description === 'string' ? values.description : undefined;
    const machineId = optional(values, 'machine-id');
    const daemon = values.daemon === true;
    checkText('name', name, 2, 128, nameRule);
    checkText('description', description, 0, 256, descriptionRule);
    if (machineId !== undefined && !/^[A-Za-z0-9._:-]{1,128}$/.test(machineId)) {
      throw new UsageError('--machine-id must be 1-128 of letters, digits, ".", ":", "_" and "-"');
    }
    if ((tokenId === undefined) !== (tokenCode === undefined)) {
      throw new UsageError(
        tokenId ? '--token-code (or SMCD_CODE) is required with --token-id' : '--token-id (or SMCD_CODE_ID) is required with --token-code',
      );
    }

    let state: AgentState;
    let reimport: (() => Promise<AgentState>) | undefined;
    if (tokenId !== undefined && tokenCode !== undefined) {
      const endpoint = checkEndpoint(optional(values, 'endpoint'));
      const opts = { endpoint, tokenId, tokenCode, stateDir, name, description, machineId };
      try {
        state = await importThisMachine(opts);
      } catch (err) {
        complain(explainFailure(err, { endpoint, tokenId }));
        return EXIT.failed;
      }
      say(`Import Source Server [${state.sourceId}] Successfully!`);
      if (!daemon) return EXIT.ok;
      reimport = () => importThisMachine(opts);
    } else {
      // Without a code only a restart of the daemon makes sense: the key of an earlier import.
      let saved: AgentState | undefined;
      try {
        saved = daemon ? await loadState(stateDir) : undefined;
      } catch (err) {
        complain(explainFailure(err, { endpoint: '' }));
        return EXIT.failed;
      }
      if (!saved) {
        throw new UsageError(
          '--token-id and --token-code (or SMCD_CODE_ID and SMCD_CODE) are required' +
            (daemon ? ` (--daemon alone resumes from ${statePath(stateDir)}, which does not exist)` : ''),
        );
      }
      const endpoint = optional(values, 'endpoint');
      state = endpoint ? { ...saved, endpoint: checkEndpoint(endpoint) } : saved;
      say(`Resuming source [${state.sourceId}] from ${statePath(stateDir)}`);
    }

    const stop = new AbortController();
    const onSignal = (signal: NodeJS.Signals) => {
      if (!stop.signal.aborted) say(`Stopping heartbeats (${signal}).`);
      stop.abort();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    say(`Sending heartbeats to ${state.endpoint} every ${state.heartbeatRate} s; stop with SIGTERM or Ctrl-C.`);
    try {
      await sendHeartbeats({ state, stateDir, tokenId, reimport, signal: stop.signal, warn: (line) => complain(`warning: ${line}`) });
      return EXIT.ok;
    } catch (err) {
      complain(explainFailure(err, { endpoint: state.endpoint, tokenId }));
      return EXIT.failed;
    } finally {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    }
  },
};
