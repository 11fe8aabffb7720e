import { errors } from '../rpc/errors.ts';
import { type Command, EXIT, UsageError } from './command.ts';
import {
  apiContext,
  apiOptions,
  declaredValue,
  expectPositionals,
  formatApiError,
  onlyFlags,
  reportingApiErrors,
  type Values,
} from './api-options.ts';
import { type Column, renderFields, renderJson, renderPage } from './output.ts';

interface DataDisk {
  Index: number;
  Path: string;
  Size: number;
}

interface SourceItem {
  SourceId: string;
  Name: string;
  Description: string;
  State: string;
  ErrorCode: string;
  Platform: string;
  Architecture: string;
  KernelLevel: number;
  AgentVersion: string;
  SystemDiskSize: number;
  DataDisks: { DataDisk: DataDisk[] };
  SystemInfo: string;
  HeartbeatRate: number;
  CreationTime: string;
  AccessTokenId: string;
  MachineId: string;
  Hostname: string;
  LastHeartbeatTime: string;
}

interface DescribeSourceServersResponse {
  RequestId: string;
  TotalCount: number;
  PageNumber: number;
  PageSize: number;
  SourceServers: { SourceServer: SourceItem[] };
}

const LIST_FLAGS = ['state', 'name', 'token-id', 'id', 'page', 'page-size'];
const MODIFY_FLAGS = ['name', 'description'];
const SUBCOMMAND_FLAGS = [...new Set([...LIST_FLAGS, ...MODIFY_FLAGS])];

/** `40G + 100G + 2T`: the system disk first, then the data disks. */
export function disksSummary(s: Pick<SourceItem, 'SystemDiskSize' | 'DataDisks'>): string {
  const size = (gib: number) => (gib >= 1024 && gib % 1024 === 0 ? `${gib / 1024}T` : `${gib}G`);
  const sizes = [s.SystemDiskSize, ...(s.DataDisks?.DataDisk ?? []).map((d) => d.Size)];
  return sizes.every((n) => !n) ? '-' : sizes.map(size).join(' + ');
}

async function list(values: Values): Promise<number> {
  onlyFlags(values, 'source list', LIST_FLAGS, SUBCOMMAND_FLAGS);
  const params = {
    SourceId: values.id as string[] | undefined,
    Name: values.name as string | undefined,
    State: declaredValue(values, 'state', 'DescribeSourceServers', 'State'),
    AccessTokenId: values['token-id'] as string | undefined,
    PageNumber: declaredValue(values, 'page', 'DescribeSourceServers', 'PageNumber'),
    PageSize: declaredValue(values, 'page-size', 'DescribeSourceServers', 'PageSize'),
  };
  const { client, output } = apiContext(values);
  return reportingApiErrors(async () => {
    const res = await client.call<DescribeSourceServersResponse>('DescribeSourceServers', params);
    const columns: Column<SourceItem>[] = [
      { header: 'SOURCE ID', value: (s) => s.SourceId },
      { header: 'NAME', value: (s) => s.Name || '-' },
      { header: 'STATE', value: (s) => s.State },
      { header: 'PLATFORM', value: (s) => s.Platform || '-' },
      { header: 'ARCH', value: (s) => s.Architecture || '-' },
      { header: 'DISKS', value: disksSummary },
      { header: 'LAST HEARTBEAT', value: (s) => s.LastHeartbeatTime || '-' },
      { header: 'ACCESS TOKEN ID', value: (s) => s.AccessTokenId || '-' },
    ];
    process.stdout.write(renderPage(output, res, res.SourceServers.SourceServer, columns, 'source server'));
    return EXIT.ok;
  });
}

async function show(values: Values, positionals: string[]): Promise<number> {
  onlyFlags(values, 'source show', [], SUBCOMMAND_FLAGS);
  const [id] = expectPositionals(positionals, ['source-id'], 'source show');
  const { client, output } = apiContext(values);
  return reportingApiErrors(async () => {
    const res = await client.call<DescribeSourceServersResponse>('DescribeSourceServers', { SourceId: [id] });
    const s = res.SourceServers.SourceServer[0];
    if (!s) {
      // DescribeSourceServers answers an unknown id with an empty list; for one id, say what Modify/Delete would.
      const e = errors.sourceNotFound();
      process.stderr.write(`${formatApiError(e.code, e.message, res.RequestId)}\n`);
      return EXIT.failed;
    }
    if (output === 'json') {
      process.stdout.write(renderJson(s));
      return EXIT.ok;
    }
    const disks = s.DataDisks?.DataDisk ?? [];
    process.stdout.write(
      renderFields([
        ['SourceId', s.SourceId],
        ['Name', s.Name],
        ['Description', s.Description],
        ['State', s.ErrorCode ? `${s.State} (${s.ErrorCode})` : s.State],
        ['Hostname', s.Hostname],
        ['MachineId', s.MachineId],
        ['Platform', s.Platform],
        ['Architecture', s.Architecture],
        ['KernelLevel', String(s.KernelLevel)],
        ['AgentVersion', s.AgentVersion],
        ['SystemDiskSize', `${s.SystemDiskSize} GiB`],
        ...disks.map((d): [string, string] => [`DataDisk ${d.Index}`, `${d.Size} GiB ${d.Path}`.trim()]),
        ['SystemInfo', s.SystemInfo],
        ['AccessTokenId', s.AccessTokenId],
        ['CreationTime', s.CreationTime],
        ['LastHeartbeatTime', s.LastHeartbeatTime],
        ['HeartbeatRate', `${s.HeartbeatRate} s`],
      ]),
    );
    return EXIT.ok;
  });
}

async function modify(values: Values, positionals: string[]): Promise<number> {
  onlyFlags(values, 'source modify', MODIFY_FLAGS, SUBCOMMAND_FLAGS);
  const [id] = expectPositionals(positionals, ['source-id'], 'source modify');
  if (values.name === undefined && values.description === undefined) throw new UsageError('source modify needs --name or --description');
  const { client, output } = apiContext(values);
  return reportingApiErrors(async () => {
    const res = await client.call<{ RequestId: string }>('ModifySourceServerAttribute', {
      SourceId: id,
      Name: values.name as string | undefined,
      Description: values.description as string | undefined,
    });
    if (output === 'json') process.stdout.write(renderJson({ RequestId: res.RequestId, SourceId: id }));
    else process.stdout.write(`Source server ${id} modified.\n`);
    return EXIT.ok;
  });
}

async function remove(values: Values, positionals: string[]): Promise<number> {
  onlyFlags(values, 'source delete', [], SUBCOMMAND_FLAGS);
  const [id] = expectPositionals(positionals, ['source-id'], 'source delete');
  const { client, output } = apiContext(values);
  return reportingApiErrors(async () => {
    const res = await client.call<{ RequestId: string }>('DeleteSourceServer', { SourceId: id });
    if (output === 'json') process.stdout.write(renderJson({ RequestId: res.RequestId, SourceId: id }));
    else
      process.stdout.write(
        `Source server ${id} deleted; its key no longer works, and the import it used stays counted on its code.\n` +
          'Its MachineId is free again: a machine with that id can import it anew with a code, without the old key.\n',
      );
    return EXIT.ok;
  });
}

/** Migration sources, through the public API (DescribeSourceServers and friends). */
export const sourceCommand: Command = {
  name: 'source',
  summary: 'Migration source servers through the API: list, show, modify, delete.',
  usage: [
    'smcd source <subcommand> [options]',
    '',
    '  list [--state S] [--name N] [--token-id ID] [--id ID]... [--page N] [--page-size N]',
    '                          List source servers, newest first.',
    '  show <source-id>        Everything known about one source server.',
    '  modify <source-id> [--name N] [--description D]',
    '                          Rename or re-describe a source server.',
    '  delete <source-id>      Delete a source server (the import stays counted on its code).',
  ].join('\n'),
  example: [
    'smcd source list --state Available --token-id at-0123456789abcdefghij',
    '  smcd source show s-0123456789abcdefghij --output json',
    '  smcd source modify s-0123456789abcdefghij --name db-primary --description "moves in wave 2"',
  ].join('\n'),
  options: {
    ...apiOptions,
    state: { type: 'string', description: 'list: Available or Unavailable.' },
    name: { type: 'string', description: 'list: only sources with exactly this name; modify: the new name.' },
    'token-id': { type: 'string', description: 'list: only sources imported with this activation code.' },
    id: { type: 'string', multiple: true, description: 'list: only this source id (repeatable).' },
    page: { type: 'string', description: 'list: page number, from 1.' },
    'page-size': { type: 'string', description: 'list: entries per page, 1-50 (server default 10).' },
    description: { type: 'string', description: 'modify: the new description ("" clears it).' },
  },
  async run(values, positionals) {
    const sub = positionals[0];
    switch (sub) {
      case 'list':
        expectPositionals(positionals, [], 'source list');
        return list(values);
      case 'show':
        return show(values, positionals);
      case 'modify':
        return modify(values, positionals);
      case 'delete':
        return remove(values, positionals);
      default:
        throw new UsageError(sub ? `unknown subcommand "${sub}"; expected list, show, modify or delete` : 'expected list, show, modify or delete');
    }
  },
};
