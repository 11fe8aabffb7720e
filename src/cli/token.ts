import { type Command, EXIT, UsageError } from './command.ts';
import { apiContext, apiOptions, declaredValue, expectPositionals, onlyFlags, reportingApiErrors, type Values } from './api-options.ts';
import { type Column, renderFields, renderJson, renderPage, shellWord } from './output.ts';

interface TokenItem {
  AccessTokenId: string;
  Name: string;
  Description: string;
  Count: string;
  RegisteredCount: string;
  TimeToLiveInDays: string;
  CreationTime: string;
  ExpirationTime: string;
  Status: string;
  IpAddressRange: string;
}

interface ListAccessTokensResponse {
  RequestId: string;
  TotalCount: number;
  PageNumber: number;
  PageSize: number;
  AccessTokens: { AccessToken: TokenItem[] };
}

const CREATE_FLAGS = ['name', 'description', 'count', 'ttl-days', 'ip-range', 'client-token'];
const LIST_FLAGS = ['status', 'name', 'id', 'page', 'page-size'];
const SUBCOMMAND_FLAGS = [...new Set([...CREATE_FLAGS, ...LIST_FLAGS])];

/** The line an operator pastes on the machine to migrate (the agent reads the pair from the environment). */
export function agentCommandLine(endpoint: string, id: string, code: string): string {
  return `SMCD_TOKEN_ID=${id} SMCD_TOKEN_CODE=${code} smcd agent import --endpoint ${shellWord(endpoint)}`;
}

async function create(values: Values): Promise<number> {
  onlyFlags(values, 'token create', CREATE_FLAGS, SUBCOMMAND_FLAGS);
  const params = {
    Name: values.name as string | undefined,
    Description: values.description as string | undefined,
    Count: declaredValue(values, 'count', 'CreateAccessToken', 'Count'),
    TimeToLiveInDays: declaredValue(values, 'ttl-days', 'CreateAccessToken', 'TimeToLiveInDays'),
    IpAddressRange: values['ip-range'] as string | undefined,
    ClientToken: values['client-token'] as string | undefined,
  };
  const { client, endpoint, output } = apiContext(values);
  return reportingApiErrors(async () => {
    const res = await client.call<{ RequestId: string; AccessTokenId: string; AccessTokenCode: string }>('CreateAccessToken', params);
    const replayed = res.AccessTokenCode === '';
    const agentCommand = replayed ? '' : agentCommandLine(endpoint, res.AccessTokenId, res.AccessTokenCode);
    if (output === 'json') {
      process.stdout.write(renderJson({ ...res, AgentCommand: agentCommand }));
      return EXIT.ok;
    }
    if (replayed) {
      process.stdout.write(
        renderFields([['AccessTokenId', res.AccessTokenId]]) +
          'This ClientToken already created this code; its code was shown only when it was created and is not shown again.\n',
      );
      return EXIT.ok;
    }
    process.stdout.write(
      renderFields([
        ['AccessTokenId', res.AccessTokenId],
        ['AccessTokenCode', res.AccessTokenCode],
      ]) +
        '\nThe code is shown only now and will not be shown again: copy it to a safe place.\n' +
        '\nTo import a machine, run this on it:\n\n' +
        `  ${agentCommand}\n`,
    );
    return EXIT.ok;
  });
}

async function list(values: Values): Promise<number> {
  onlyFlags(values, 'token list', LIST_FLAGS, SUBCOMMAND_FLAGS);
  const params = {
    AccessTokenId: values.id as string[] | undefined,
    Name: values.name as string | undefined,
    Status: declaredValue(values, 'status', 'ListAccessTokens', 'Status'),
    PageNumber: declaredValue(values, 'page', 'ListAccessTokens', 'PageNumber'),
    PageSize: declaredValue(values, 'page-size', 'ListAccessTokens', 'PageSize'),
  };
  const { client, output } = apiContext(values);
  return reportingApiErrors(async () => {
    const res = await client.call<ListAccessTokensResponse>('ListAccessTokens', params);
    const columns: Column<TokenItem>[] = [
      { header: 'ACCESS TOKEN ID', value: (t) => t.AccessTokenId },
      { header: 'NAME', value: (t) => t.Name || '-' },
      { header: 'STATUS', value: (t) => t.Status },
      { header: 'USED', value: (t) => `${t.RegisteredCount}/${t.Count}` },
      { header: 'REMAINING', value: (t) => String(Math.max(0, Number(t.Count) - Number(t.RegisteredCount))) },
      { header: 'CREATED', value: (t) => t.CreationTime },
      { header: 'EXPIRES', value: (t) => t.ExpirationTime },
      { header: 'ADDRESS RANGE', value: (t) => t.IpAddressRange || 'any' },
    ];
    process.stdout.write(renderPage(output, res, res.AccessTokens.AccessToken, columns, 'activation code'));
    return EXIT.ok;
  });
}

async function disableOrDelete(sub: 'disable' | 'delete', values: Values, positionals: string[]): Promise<number> {
  onlyFlags(values, `token ${sub}`, [], SUBCOMMAND_FLAGS);
  const [id] = expectPositionals(positionals, ['access-token-id'], `token ${sub}`);
  const { client, output } = apiContext(values);
  return reportingApiErrors(async () => {
    const res = await client.call<{ RequestId: string }>(sub === 'disable' ? 'DisableAccessToken' : 'DeleteAccessToken', { AccessTokenId: id });
    if (output === 'json') process.stdout.write(renderJson({ RequestId: res.RequestId, AccessTokenId: id }));
    else
      process.stdout.write(
        sub === 'disable'
          ? `Activation code ${id} disabled: it imports nothing more; imported sources stay.\n`
          : `Activation code ${id} deleted; its sources stay and keep its id.\n`,
      );
    return EXIT.ok;
  });
}

/** Activation codes, through the public API (ListAccessTokens and friends), signed like any client. */
export const tokenCommand: Command = {
  name: 'token',
  summary: 'Activation codes through the API: create, list, disable, delete.',
  usage: [
    'smcd token <subcommand> [options]',
    '',
    '  create [--name N] [--description D] [--count N] [--ttl-days N] [--ip-range CIDRS] [--client-token T]',
    '                          Create a code; it is printed once, with the agent command that uses it.',
    '  list [--status S] [--name N] [--id ID]... [--page N] [--page-size N]',
    '                          List codes, newest first.',
    '  disable <access-token-id>   Stop a code from importing more machines (cannot be undone).',
    '  delete <access-token-id>    Delete a code; sources imported with it stay.',
  ].join('\n'),
  example: [
    'smcd token create --name dc1-wave-1 --count 20 --ttl-days 7 --ip-range 10.0.0.0/8',
    '  smcd token list --status activated --output json',
    '  smcd token disable at-0123456789abcdefghij --endpoint https://smcd.example.com',
  ].join('\n'),
  options: {
    ...apiOptions,
    name: { type: 'string', description: 'create: name of the code; list: only codes with exactly this name.' },
    description: { type: 'string', description: 'create: description.' },
    count: { type: 'string', description: 'create: how many machines may import with it, 1-1000 (server default 100).' },
    'ttl-days': { type: 'string', description: 'create: lifetime in days, 1-90 (server default 30).' },
    'ip-range': { type: 'string', description: 'create: comma-separated addresses/CIDRs allowed to import.' },
    'client-token': { type: 'string', description: 'create: idempotency key; a retry returns the same code id, never the code again.' },
    status: { type: 'string', description: 'list: activated, unactivated or expired.' },
    id: { type: 'string', multiple: true, description: 'list: only this code id (repeatable).' },
    page: { type: 'string', description: 'list: page number, from 1.' },
    'page-size': { type: 'string', description: 'list: entries per page, 1-50 (server default 20).' },
  },
  async run(values, positionals) {
    const sub = positionals[0];
    switch (sub) {
      case 'create':
      case 'list':
        expectPositionals(positionals, [], `token ${sub}`);
        return sub === 'create' ? create(values) : list(values);
      case 'disable':
      case 'delete':
        return disableOrDelete(sub, values, positionals);
      default:
        throw new UsageError(sub ? `unknown subcommand "${sub}"; expected create, list, disable or delete` : 'expected create, list, disable or delete');
    }
  },
};
