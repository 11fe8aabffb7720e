import { readRootCredentials, rootCredentialsPath } from '../bootstrap.ts';
import { ApiCallError, type ClientCredentials, ConnectionError, RpcClient } from '../client/rpc-client.ts';
import { EXIT, type OptionSpec, UsageError } from './command.ts';

export const DEFAULT_ENDPOINT = 'http://127.0.0.1:8080';

/**
 * Options of every command that talks to a server through the public API.
 * The key id and secret have no `env` entry on purpose: parseCommand would fill
 * each one on its own, and a flag id with an environment secret must not mix.
 */
export const apiOptions: Record<string, OptionSpec> = {
  endpoint: { type: 'string', description: 'Address of the smcd server.', env: 'SMCD_ENDPOINT', default: DEFAULT_ENDPOINT },
  'access-key-id': { type: 'string', description: 'Access key id (else ALIBABA_CLOUD_ACCESS_KEY_ID, else the root credentials file).' },
  'access-key-secret': { type: 'string', description: 'Access key secret (else ALIBABA_CLOUD_ACCESS_KEY_SECRET).' },
  'data-dir': {
    type: 'string',
    description: 'Where root-credentials.json is read from when no key is given.',
    env: 'SMCD_DATA_DIR',
    default: './data',
  },
  output: { type: 'string', description: 'table or json.', default: 'table' },
};

export type Values = Record<string, string | boolean | string[] | undefined>;

export interface ResolvedCredentials extends ClientCredentials {
  /** Where they came from, for error messages. */
  origin: string;
}

/** Flags, then ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET, then <data-dir>/root-credentials.json; each as a pair. */
export function resolveCredentials(values: Values, env: NodeJS.ProcessEnv = process.env): ResolvedCredentials {
  const flagId = values['access-key-id'] as string | undefined;
  const flagSecret = values['access-key-secret'] as string | undefined;
  if (flagId !== undefined || flagSecret !== undefined) {
    if (!flagId || !flagSecret) throw new UsageError('--access-key-id and --access-key-secret go together');
    return { accessKeyId: flagId, accessKeySecret: flagSecret, origin: 'flags' };
  }
  const envId = env.ALIBABA_CLOUD_ACCESS_KEY_ID || undefined;
  const envSecret = env.ALIBABA_CLOUD_ACCESS_KEY_SECRET || undefined;
  if (envId || envSecret) {
    if (!envId || !envSecret) throw new UsageError('set both ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, or neither');
    return { accessKeyId: envId, accessKeySecret: envSecret, origin: 'environment' };
  }
  const dataDir = String(values['data-dir']);
  const root = readRootCredentials(dataDir);
  if (root?.AccessKeyId && root.AccessKeySecret) {
    return { accessKeyId: root.AccessKeyId, accessKeySecret: root.AccessKeySecret, origin: rootCredentialsPath(dataDir) };
  }
  throw new UsageError(
    `no credentials: pass --access-key-id and --access-key-secret, set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, ` +
      `or run where ${rootCredentialsPath(dataDir)} is readable (--data-dir)`,
  );
}

export function endpointOf(values: Values): string {
  const raw = String(values.endpoint);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`--endpoint: "${raw}" is not a URL such as ${DEFAULT_ENDPOINT}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError('--endpoint must start with http:// or https://');
  return raw.replace(/\/+$/, '');
}

export function outputOf(values: Values): 'table' | 'json' {
  const output = String(values.output);
  if (output !== 'table' && output !== 'json') throw new UsageError('--output must be table or json');
  return output;
}

/** Everything a subcommand needs to call the API; usage errors surface before any request. */
export function apiContext(values: Values) {
  const endpoint = endpointOf(values);
  const output = outputOf(values);
  const credentials = resolveCredentials(values);
  return { endpoint, output, credentials, client: new RpcClient(endpoint, credentials) };
}

/** Refuses flags that belong to another subcommand, instead of silently ignoring them. */
export function onlyFlags(values: Values, sub: string, allowed: readonly string[], subcommandFlags: readonly string[]): void {
  const stray = subcommandFlags.filter((f) => !allowed.includes(f) && values[f] !== undefined);
  if (stray.length) throw new UsageError(`${sub} does not take ${stray.map((f) => `--${f}`).join(', ')}`);
}

export function expectPositionals(positionals: string[], names: string[], sub: string): string[] {
  const args = positionals.slice(1);
  if (args.length < names.length) throw new UsageError(`${sub} needs ${names.map((n) => `<${n}>`).join(' ')}`);
  if (args.length > names.length) throw new UsageError(`${sub}: unexpected argument "${args[names.length]}"`);
  return args;
}

/** One or more positional arguments after the subcommand (`source approve <id>...`). */
export function expectSomePositionals(positionals: string[], name: string, sub: string): string[] {
  const args = positionals.slice(1);
  if (args.length === 0) throw new UsageError(`${sub} needs <${name}>...`);
  return args;
}

/**
 * Runs one API interaction: an SMC error or an unreachable server becomes a
 * line on stderr and exit code 1.
 */
export async function reportingApiErrors(run: () => Promise<number>): Promise<number> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof ApiCallError) {
      process.stderr.write(`${formatApiError(err.code, err.message, err.requestId)}\n`);
      return EXIT.failed;
    }
    if (err instanceof ConnectionError) {
      process.stderr.write(`${err.message}: is smcd serving there? Set the endpoint with --endpoint or SMCD_ENDPOINT.\n`);
      return EXIT.failed;
    }
    throw err;
  }
}

export function formatApiError(code: string, message: string, requestId: string): string {
  return `${code}: ${message}${requestId ? ` (RequestId ${requestId})` : ''}`;
}
