import type { ResponseOf } from '../client/rpc-client.ts';
import { errors } from '../rpc/errors.ts';
import { apiCommand, subcommand } from './api-command.ts';
import { formatApiError } from './api-options.ts';
import { EXIT } from './command.ts';
import { summaryOf } from './commands.ts';
import { type Column, fieldColumn, renderFields, renderJson, renderPage, tagsSummary } from './output.ts';

type SourceItem = ResponseOf<'DescribeSourceServers'>['SourceServers']['SourceServer'][number];

/** `40G + 100G + 2T`: the system disk first, then the data disks. */
export function disksSummary(s: Pick<SourceItem, 'SystemDiskSize' | 'DataDisks'>): string {
  const size = (gib: number) => (gib >= 1024 && gib % 1024 === 0 ? `${gib / 1024}T` : `${gib}G`);
  const sizes = [s.SystemDiskSize, ...(s.DataDisks?.DataDisk ?? []).map((d) => d.Size)];
  return sizes.every((n) => !n) ? '-' : sizes.map(size).join(' + ');
}

const SOURCE_COLUMNS: Column<SourceItem>[] = [
  fieldColumn('SourceId'),
  fieldColumn('Name'),
  fieldColumn('State'),
  fieldColumn('ApprovalStatus', 'APPROVAL'),
  fieldColumn('Platform'),
  fieldColumn('Architecture', 'ARCH'),
  { header: 'DISKS', value: disksSummary },
  fieldColumn('LastHeartbeatTime', 'LAST HEARTBEAT'),
  fieldColumn('AccessTokenId'),
  { header: 'TAGS', value: (s) => tagsSummary(s.Tags) },
];

function sourceFields(s: SourceItem): Array<[string, string]> {
  return [
    ['SourceId', s.SourceId],
    ['Name', s.Name],
    ['Description', s.Description],
    ['State', s.ErrorCode ? `${s.State} (${s.ErrorCode})` : s.State],
    ['ApprovalStatus', s.ApprovalStatus],
    ['Tags', tagsSummary(s.Tags)],
    ['Hostname', s.Hostname],
    ['MachineId', s.MachineId],
    ['Platform', s.Platform],
    ['Architecture', s.Architecture],
    ['KernelLevel', String(s.KernelLevel)],
    ['AgentVersion', s.AgentVersion],
    ['SystemDiskSize', `${s.SystemDiskSize} GiB`],
    ...(s.DataDisks?.DataDisk ?? []).map((d): [string, string] => [`DataDisk ${d.Index}`, `${d.Size} GiB ${d.Path}`.trim()]),
    ['SystemInfo', s.SystemInfo],
    ['AccessTokenId', s.AccessTokenId],
    ['CreationTime', s.CreationTime],
    ['LastHeartbeatTime', s.LastHeartbeatTime],
    ['HeartbeatRate', `${s.HeartbeatRate} s`],
    ['FirstImportTime', s.FirstImportTime],
    ['FirstClientIp', s.FirstClientIp],
    ['LastImportTime', s.LastImportTime],
    ['LastClientIp', s.LastClientIp],
  ];
}

/** Migration sources, through the public API (DescribeSourceServers and friends). */
export const sourceCommand = apiCommand({
  name: 'source',
  summary: summaryOf('source'),
  example: [
    'smcd source list --state Available --token-id at-0123456789abcdefghij --tag env=prod',
    '  smcd source list --approval-status Pending',
    '  smcd source approve s-0123456789abcdefghij s-abcdefghij0123456789',
    '  smcd source show s-0123456789abcdefghij --output json',
    '  smcd source modify s-0123456789abcdefghij --name db-primary --description "moves in wave 2"',
  ].join('\n'),
  subcommands: [
    subcommand({
      name: 'list',
      action: 'DescribeSourceServers',
      summary: 'List source servers, newest first.',
      async run({ call, output }) {
        const res = await call();
        process.stdout.write(renderPage(output, res, res.SourceServers.SourceServer, SOURCE_COLUMNS, 'source server'));
        return EXIT.ok;
      },
    }),
    subcommand({
      name: 'show',
      action: 'DescribeSourceServers',
      positional: 'SourceId',
      flags: [],
      summary: 'Everything known about one source server.',
      async run({ call, output }) {
        const res = await call();
        const s = res.SourceServers.SourceServer[0];
        if (!s) {
          // DescribeSourceServers answers an unknown id with an empty list; for one id, say what Modify/Delete would.
          const e = errors.sourceNotFound();
          process.stderr.write(`${formatApiError(e.code, e.message, res.RequestId)}\n`);
          return EXIT.failed;
        }
        process.stdout.write(output === 'json' ? renderJson(s) : renderFields(sourceFields(s)));
        return EXIT.ok;
      },
    }),
    subcommand({
      name: 'modify',
      action: 'ModifySourceServerAttribute',
      positional: 'SourceId',
      needsOneOf: ['name', 'description'],
      summary: 'Rename or re-describe a source server.',
      async run({ call, output, positional: id }) {
        const res = await call();
        process.stdout.write(output === 'json' ? renderJson({ RequestId: res.RequestId, SourceId: id }) : `Source server ${id} modified.\n`);
        return EXIT.ok;
      },
    }),
    subcommand({
      name: 'delete',
      action: 'DeleteSourceServer',
      positional: 'SourceId',
      summary: 'Delete a source server (the import stays counted on its code).',
      async run({ call, output, positional: id }) {
        const res = await call();
        process.stdout.write(
          output === 'json'
            ? renderJson({ RequestId: res.RequestId, SourceId: id })
            : `Source server ${id} deleted; its key no longer works, and the import it used stays counted on its code.\n` +
                'Its MachineId is free again: a machine with that id can import it anew with a code, without the old key.\n',
        );
        return EXIT.ok;
      },
    }),
    subcommand({
      name: 'approve',
      action: 'ApproveSourceServers',
      positional: 'SourceId',
      variadic: true,
      summary: 'Approve sources imported with a code that requires approval (Pending becomes Approved).',
      async run({ call, output, positionals: ids }) {
        const res = await call();
        process.stdout.write(output === 'json' ? renderJson({ RequestId: res.RequestId, SourceIds: ids }) : `Approved: ${ids.join(', ')}.\n`);
        return EXIT.ok;
      },
    }),
    subcommand({
      name: 'reject',
      action: 'RejectSourceServers',
      positional: 'SourceId',
      variadic: true,
      summary: 'Reject sources: they are deleted and their keys refused from now on.',
      async run({ call, output, positionals: ids }) {
        const res = await call();
        process.stdout.write(
          output === 'json'
            ? renderJson({ RequestId: res.RequestId, SourceIds: ids })
            : `Rejected and deleted: ${ids.join(', ')}; their keys no longer work.\n`,
        );
        return EXIT.ok;
      },
    }),
  ],
});
