import type { ResponseOf } from '../client/rpc-client.ts';
import { apiCommand, subcommand } from './api-command.ts';
import { EXIT } from './command.ts';
import { summaryOf } from './commands.ts';
import { type Column, fieldColumn, renderFields, renderJson, renderPage, shellWord, tagsSummary } from './output.ts';

type TokenItem = ResponseOf<'ListAccessTokens'>['AccessTokens']['AccessToken'][number];

/**
 * The lines an operator pastes on a machine to migrate: the shell agent served by smcd (only
 * sh, curl or wget, and openssl needed), and the Node agent where smcd is installed. Both read
 * the code pair from the environment, so it stays out of the process list.
 */
export function importCommands(publicUrl: string, id: string, code: string) {
  const url = shellWord(publicUrl);
  const pair = `SMCD_CODE_ID=${id} SMCD_CODE=${code}`;
  return {
    curl: `curl -fsSL ${url}/agent/smcd-agent.sh | ${pair} sh -s -- import`,
    wget: `wget -qO- ${url}/agent/smcd-agent.sh | ${pair} sh -s -- import`,
    node: `${pair} smcd agent import --endpoint ${url}`,
  };
}

/** Where machines reach the server (its --public-url), asked of the server; else the endpoint used here. */
async function publicUrlOf(endpoint: string): Promise<string> {
  try {
    const res = await fetch(`${endpoint}/agent/info.json`, { signal: AbortSignal.timeout(3_000) });
    const info = (await res.json()) as { PublicUrl?: unknown };
    if (typeof info.PublicUrl === 'string' && /^https?:\/\/\S+$/.test(info.PublicUrl)) return info.PublicUrl;
  } catch {
    /* an older server, or a proxy that hides the path: the endpoint will do */
  }
  return endpoint;
}

const TOKEN_COLUMNS: Column<TokenItem>[] = [
  fieldColumn('AccessTokenId'),
  fieldColumn('Name'),
  // A disabled code's SMC status is "unactivated", like a used-up one: the CLI tells them apart.
  { header: 'STATUS', value: (t) => (t.Disabled === 'true' && t.Status === 'unactivated' ? 'disabled' : t.Status) },
  { header: 'USED', value: (t) => `${t.RegisteredCount}/${t.Count}` },
  { header: 'REMAINING', value: (t) => String(Math.max(0, Number(t.Count) - Number(t.RegisteredCount))) },
  fieldColumn('CreationTime', 'CREATED'),
  fieldColumn('ExpirationTime', 'EXPIRES'),
  { header: 'ADDRESS RANGE', value: (t) => t.IpAddressRange || 'any' },
  { header: 'APPROVAL', value: (t) => (t.RequireApproval === 'true' ? 'required' : '-') },
  { header: 'TAGS', value: (t) => tagsSummary(t.Tags) },
];

/** Activation codes, through the public API (CreateAccessToken and friends), signed like any client. */
export const tokenCommand = apiCommand({
  name: 'token',
  summary: summaryOf('token'),
  example: [
    'smcd token create --name dc1-wave-1 --count 20 --ttl-days 7 --ip-range 10.0.0.0/8 --tag env=prod --require-approval',
    '  smcd token list --status activated --tag env=prod --output json',
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
        const commands = replayed ? undefined : importCommands(await publicUrlOf(endpoint), res.AccessTokenId, res.AccessTokenCode);
        if (output === 'json') {
          process.stdout.write(
            renderJson({ ...res, ImportCommand: commands?.curl ?? '', ImportCommandWget: commands?.wget ?? '', AgentCommand: commands?.node ?? '' }),
          );
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
            '\nTo import a machine, run this on it (it needs only sh, curl and openssl):\n\n' +
            `  ${commands?.curl}\n` +
            '\nwithout curl:\n\n' +
            `  ${commands?.wget}\n` +
            '\nor, where smcd is installed (Node.js):\n\n' +
            `  ${commands?.node}\n`,
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
          output === 'json'
            ? renderJson({ RequestId: res.RequestId, AccessTokenId: id })
            : `Activation code ${id} disabled: it imports nothing more; imported sources stay.\n`,
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
        process.stdout.write(
          output === 'json'
            ? renderJson({ RequestId: res.RequestId, AccessTokenId: id })
            : `Activation code ${id} deleted; its sources stay and keep its id.\n`,
        );
        return EXIT.ok;
      },
    }),
  ],
});
