import type { ResponseOf } from '../client/rpc-client.ts';
import { apiCommand, subcommand } from './api-command.ts';
import { EXIT } from './command.ts';
import { type Column, fieldColumn, renderFields, renderJson, renderPage, shellWord } from './output.ts';

type TokenItem = ResponseOf<'ListAccessTokens'>['AccessTokens']['AccessToken'][number];

/** The line an operator pastes on the machine to migrate (the agent reads the pair from the environment). */
export function agentCommandLine(endpoint: string, id: string, code: string): string {
  return `SMCD_TOKEN_ID=${id} SMCD_TOKEN_CODE=${code} smcd agent import --endpoint ${shellWord(endpoint)}`;
}

const TOKEN_COLUMNS: Column<TokenItem>[] = [
  fieldColumn('AccessTokenId'),
  fieldColumn('Name'),
  fieldColumn('Status'),
  { header: 'USED', value: (t) => `${t.RegisteredCount}/${t.Count}` },
  { header: 'REMAINING', value: (t) => String(Math.max(0, Number(t.Count) - Number(t.RegisteredCount))) },
  fieldColumn('CreationTime', 'CREATED'),
  fieldColumn('ExpirationTime', 'EXPIRES'),
  { header: 'ADDRESS RANGE', value: (t) => t.IpAddressRange || 'any' },
];

/** Activation codes, through the public API (CreateAccessToken and friends), signed like any client. */
export const tokenCommand = apiCommand({
  name: 'token',
  summary: 'Activation codes through the API: create, list, disable, delete.',
  example: [
    'smcd token create --name dc1-wave-1 --count 20 --ttl-days 7 --ip-range 10.0.0.0/8',
    '  smcd token list --status activated --output json',
    '  smcd token disable at-0123456789abcdefghij --endpoint https://smcd.example.com',
  ].join('\n'),
  subcommands: [
    subcommand({
      name: 'create',
      action: 'CreateAccessToken',
      summary: 'Create a code; it is printed once, with the agent command that uses it.',
      async run({ call, output, endpoint }) {
        const res = await call();
        const replayed = res.AccessTokenCode === '';
        const agentCommand = replayed ? '' : agentCommandLine(endpoint, res.AccessTokenId, res.AccessTokenCode);
        if (output === 'json') {
          process.stdout.write(renderJson({ ...res, AgentCommand: agentCommand }));
          return EXIT.ok;
        }
        if (replayed) {
          process.stdout.write(
            `${renderFields([['AccessTokenId', res.AccessTokenId]])}This ClientToken already created this code; its code was shown only when it was created and is not shown again.\n`,
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
      },
    }),
    subcommand({
      name: 'list',
      action: 'ListAccessTokens',
      summary: 'List codes, newest first.',
      async run({ call, output }) {
        const res = await call();
        process.stdout.write(renderPage(output, res, res.AccessTokens.AccessToken, TOKEN_COLUMNS, 'activation code'));
        return EXIT.ok;
      },
    }),
    subcommand({
      name: 'disable',
      action: 'DisableAccessToken',
      positional: 'AccessTokenId',
      summary: 'Stop a code from importing more machines (cannot be undone).',
      async run({ call, output, positional: id }) {
        const res = await call();
        process.stdout.write(
          output === 'json' ? renderJson({ RequestId: res.RequestId, AccessTokenId: id }) : `Activation code ${id} disabled: it imports nothing more; imported sources stay.\n`,
        );
        return EXIT.ok;
      },
    }),
    subcommand({
      name: 'delete',
      action: 'DeleteAccessToken',
      positional: 'AccessTokenId',
      summary: 'Delete a code; sources imported with it stay.',
      async run({ call, output, positional: id }) {
        const res = await call();
        process.stdout.write(output === 'json' ? renderJson({ RequestId: res.RequestId, AccessTokenId: id }) : `Activation code ${id} deleted; its sources stay and keep its id.\n`);
        return EXIT.ok;
      },
    }),
  ],
});
