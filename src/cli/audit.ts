import type { ResponseOf } from '../client/rpc-client.ts';
import { apiCommand, subcommand } from './api-command.ts';
import { EXIT } from './command.ts';
import { summaryOf } from './commands.ts';
import { type Column, fieldColumn, renderJson, renderTable } from './output.ts';

type EventItem = ResponseOf<'DescribeAuditEvents'>['Events']['Event'][number];

const EVENT_COLUMNS: Column<EventItem>[] = [
  fieldColumn('EventTime', 'TIME'),
  fieldColumn('EventType', 'TYPE'),
  fieldColumn('ResourceId', 'RESOURCE'),
  { header: 'ACTOR', value: (e) => e.ActorKeyId || '-' },
  { header: 'CLIENT IP', value: (e) => e.ClientIp || '-' },
  fieldColumn('Detail'),
];

/** The audit trail, through the public API (DescribeAuditEvents). */
export const auditCommand = apiCommand({
  name: 'audit',
  summary: summaryOf('audit'),
  example: [
    'smcd audit --type SourceServer.ImportRefused --start-time 2030-01-01T00:00:00Z',
    '  smcd audit --resource-id at-0123456789abcdefghij --output json',
  ].join('\n'),
  defaultSubcommand: 'list',
  subcommands: [
    subcommand({
      name: 'list',
      action: 'DescribeAuditEvents',
      summary: 'List audit events, newest first (the default).',
      async run({ call, output }) {
        const res = await call();
        if (output === 'json') {
          process.stdout.write(renderJson(res));
          return EXIT.ok;
        }
        const events = res.Events.Event;
        process.stdout.write(events.length === 0 ? 'No audit events.\n' : renderTable(EVENT_COLUMNS, events));
        if (res.NextToken) process.stdout.write(`More: --next-token ${res.NextToken}\n`);
        return EXIT.ok;
      },
    }),
  ],
});
