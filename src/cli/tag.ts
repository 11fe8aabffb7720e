import type { ResponseOf } from '../client/rpc-client.ts';
import { apiCommand, subcommand } from './api-command.ts';
import { EXIT } from './command.ts';
import { summaryOf } from './commands.ts';
import { type Column, fieldColumn, renderJson, renderTable } from './output.ts';

type TagRow = ResponseOf<'ListTagResources'>['TagResources']['TagResource'][number];

const TAG_COLUMNS: Column<TagRow>[] = [fieldColumn('ResourceId'), fieldColumn('TagKey', 'KEY'), { header: 'VALUE', value: (r) => r.TagValue }];

/** Tags on sources and codes, through the public API (TagResources, UntagResources, ListTagResources). */
export const tagCommand = apiCommand({
  name: 'tag',
  summary: summaryOf('tag'),
  example: [
    'smcd tag add --type sourceserver --id s-0123456789abcdefghij --tag env=prod --tag team=db',
    '  smcd tag remove --type accesstoken --id at-0123456789abcdefghij --key team',
    '  smcd tag list --type sourceserver --tag env=prod',
  ].join('\n'),
  subcommands: [
    subcommand({
      name: 'add',
      action: 'TagResources',
      summary: 'Tag resources (--id, repeatable) with --tag KEY=VALUE (repeatable); a key they have gets the new value.',
      async run({ call, output, values }) {
        const res = await call();
        const ids = (values.id as string[] | undefined) ?? [];
        process.stdout.write(output === 'json' ? renderJson({ RequestId: res.RequestId, ResourceIds: ids }) : `Tagged: ${ids.join(', ')}.\n`);
        return EXIT.ok;
      },
    }),
    subcommand({
      name: 'remove',
      action: 'UntagResources',
      summary: 'Remove tags (--key, repeatable, or --all) from resources (--id, repeatable).',
      async run({ call, output, values }) {
        const res = await call();
        const ids = (values.id as string[] | undefined) ?? [];
        process.stdout.write(output === 'json' ? renderJson({ RequestId: res.RequestId, ResourceIds: ids }) : `Untagged: ${ids.join(', ')}.\n`);
        return EXIT.ok;
      },
    }),
    subcommand({
      name: 'list',
      action: 'ListTagResources',
      summary: 'List tags, one row per (resource, tag); --tag filters resources having every tag given.',
      async run({ call, output }) {
        const res = await call();
        if (output === 'json') {
          process.stdout.write(renderJson(res));
          return EXIT.ok;
        }
        const rows = res.TagResources.TagResource;
        const more = res.NextToken ? `More rows: add --next-token ${res.NextToken}\n` : '';
        process.stdout.write(rows.length ? renderTable(TAG_COLUMNS, rows) + more : 'No tags.\n');
        return EXIT.ok;
      },
    }),
  ],
});
