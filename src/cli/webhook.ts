import type { ResponseOf } from '../client/rpc-client.ts';
import { apiCommand, subcommand } from './api-command.ts';
import { EXIT } from './command.ts';
import { summaryOf } from './commands.ts';
import { type Column, fieldColumn, renderJson, renderTable } from './output.ts';

type WebhookItem = ResponseOf<'ListWebhooks'>['Webhooks']['Webhook'][number];
type DeliveryItem = ResponseOf<'DescribeWebhookDeliveries'>['Deliveries']['Delivery'][number];

const WEBHOOK_COLUMNS: Column<WebhookItem>[] = [
  fieldColumn('WebhookId'),
  fieldColumn('Url', 'URL'),
  { header: 'EVENT TYPES', value: (w) => w.EventTypes.EventType.join(',') },
  fieldColumn('CreationTime', 'CREATED'),
];

const DELIVERY_COLUMNS: Column<DeliveryItem>[] = [
  fieldColumn('EventId'),
  fieldColumn('EventType', 'TYPE'),
  fieldColumn('Status'),
  { header: 'ATTEMPTS', value: (d) => String(d.Attempts) },
  { header: 'LAST ATTEMPT', value: (d) => d.LastAttemptTime || '-' },
  { header: 'LAST STATUS', value: (d) => (d.Attempts > 0 ? String(d.LastStatusCode || 'no answer') : '-') },
];

/** Webhooks, through the public API. */
export const webhookCommand = apiCommand({
  name: 'webhook',
  summary: summaryOf('webhook'),
  example: [
    'smcd webhook create --url https://hooks.example.com/smcd --type SourceServer.Offline --type AccessToken.Exhausted',
    '  smcd webhook deliveries wh-0123456789abcdefghij --status failed',
  ].join('\n'),
  subcommands: [
    subcommand({
      name: 'create',
      action: 'CreateWebhook',
      summary: 'Subscribe a URL to event types; prints the signing secret once.',
      async run({ call, output }) {
        const res = await call();
        process.stdout.write(
          output === 'json'
            ? renderJson(res)
            : `WebhookId:     ${res.WebhookId}\nWebhookSecret: ${res.WebhookSecret}\n` +
                'The secret is shown only now: the receiver checks Smcd-Signature with it.\n',
        );
        return EXIT.ok;
      },
    }),
    subcommand({
      name: 'list',
      action: 'ListWebhooks',
      summary: 'List webhooks (never their secrets).',
      async run({ call, output }) {
        const res = await call();
        const hooks = res.Webhooks.Webhook;
        process.stdout.write(output === 'json' ? renderJson(res) : hooks.length === 0 ? 'No webhooks.\n' : renderTable(WEBHOOK_COLUMNS, hooks));
        return EXIT.ok;
      },
    }),
    subcommand({
      name: 'delete',
      action: 'DeleteWebhook',
      positional: 'WebhookId',
      summary: 'Delete a webhook and what it still had to deliver.',
      async run({ call, output, positional: id }) {
        const res = await call();
        process.stdout.write(output === 'json' ? renderJson({ RequestId: res.RequestId, WebhookId: id }) : `Webhook ${id} deleted.\n`);
        return EXIT.ok;
      },
    }),
    subcommand({
      name: 'deliveries',
      action: 'DescribeWebhookDeliveries',
      positional: 'WebhookId',
      summary: "A webhook's deliveries, newest first.",
      async run({ call, output }) {
        const res = await call();
        const items = res.Deliveries.Delivery;
        if (output === 'json') process.stdout.write(renderJson(res));
        else if (items.length === 0) process.stdout.write(res.TotalCount > 0 ? `Page ${res.PageNumber}: past the last page.\n` : 'No deliveries.\n');
        else {
          const pages = Math.max(1, Math.ceil(res.TotalCount / res.PageSize));
          const noun = res.TotalCount === 1 ? 'delivery' : 'deliveries';
          process.stdout.write(`${renderTable(DELIVERY_COLUMNS, items)}Page ${res.PageNumber} of ${pages}, ${res.TotalCount} ${noun} in all.\n`);
        }
        return EXIT.ok;
      },
    }),
  ],
});
