import { newWebhookId, newWebhookSecret } from '../crypto/ids.ts';
import { EVENT_TYPES } from '../domain/audit-event.ts';
import { webhookUrlRule } from '../domain/text-rules.ts';
import { formatTime } from '../domain/time.ts';
import type { DeliveryRecord, WebhookRecord } from '../domain/webhook.ts';
import { errors } from '../rpc/errors.ts';
import { integer, list, oneOf, text } from '../rpc/params.ts';
import { int, obj, str, wrapped } from '../rpc/shapes.ts';
import { pageFields, pageNumber, pageOf, pageSize } from './common.ts';
import { defineAction } from './define.ts';

const webhookIdParam = text({ required: true, max: 64, doc: 'The webhook id.' });

const webhookItem = obj({
  WebhookId: str(),
  Url: str(),
  ...wrapped('EventTypes', 'EventType', str()).fields,
  ExpiringSoonDays: int('smcd: days before expiry that AccessToken.ExpiringSoon is sent.'),
  CreationTime: str(),
});

const webhookView = (w: WebhookRecord) => ({
  WebhookId: w.id,
  Url: w.url,
  EventTypes: { EventType: w.eventTypes },
  ExpiringSoonDays: w.expiringSoonDays,
  CreationTime: formatTime(w.createdAt),
});

export const createWebhook = defineAction({
  name: 'CreateWebhook',
  origin: 'smcd',
  summary: 'Subscribes a URL to events; each is POSTed, signed with the secret returned only here.',
  signedBy: 'access-key',
  params: {
    Url: text({ required: true, max: 2048, rule: webhookUrlRule, doc: 'http:// or https:// URL the events are POSTed to.' }),
    EventType: list({
      required: true,
      maxItems: EVENT_TYPES.length,
      itemMax: 64,
      values: EVENT_TYPES,
      flag: 'type',
      doc: 'EventType.N: audit event types, AccessToken.ExpiringSoon, AccessToken.Exhausted.',
    }),
    ExpiringSoonDays: integer({ min: 1, max: 30, default: 3, doc: 'Days before expiry that AccessToken.ExpiringSoon is sent, 1-30 (default 3).' }),
  },
  response: obj({
    WebhookId: str('wh- and 20 of [a-z0-9].'),
    WebhookSecret: str('Signs every delivery (Smcd-Signature); returned only here.'),
  }),
  async handler(ctx, p) {
    const id = newWebhookId();
    const secret = newWebhookSecret();
    await ctx.services.store.createWebhook({
      id,
      url: p.Url,
      eventTypes: [...new Set(p.EventType)],
      expiringSoonDays: p.ExpiringSoonDays,
      secretSealed: ctx.services.box.seal(secret, id),
      createdAt: ctx.now,
    });
    ctx.services.log.info({ audit: 'CreateWebhook', requestId: ctx.requestId, keyId: ctx.caller.keyId, webhookId: id }, 'webhook created');
    return { WebhookId: id, WebhookSecret: secret };
  },
});

export const listWebhooks = defineAction({
  name: 'ListWebhooks',
  origin: 'smcd',
  summary: 'Lists webhooks, newest first. Never returns their secrets.',
  signedBy: 'access-key',
  params: {},
  response: obj({ ...wrapped('Webhooks', 'Webhook', webhookItem).fields }),
  async handler(ctx) {
    return { Webhooks: { Webhook: (await ctx.services.store.listWebhooks()).map(webhookView) } };
  },
});

export const deleteWebhook = defineAction({
  name: 'DeleteWebhook',
  origin: 'smcd',
  summary: 'Deletes a webhook and its pending deliveries.',
  signedBy: 'access-key',
  params: { WebhookId: webhookIdParam },
  response: obj({}),
  async handler(ctx, p) {
    if (!(await ctx.services.store.deleteWebhook(p.WebhookId))) throw errors.webhookNotFound();
    ctx.services.log.info({ audit: 'DeleteWebhook', requestId: ctx.requestId, keyId: ctx.caller.keyId, webhookId: p.WebhookId }, 'webhook deleted');
    return {};
  },
});

const deliveryItem = obj({
  EventId: str(),
  EventType: str(),
  Attempts: int(),
  LastAttemptTime: str('Empty before the first attempt.'),
  LastStatusCode: int('HTTP status of the last attempt; 0 when there was no answer (or no attempt yet).'),
  Status: str('pending | delivered | failed.'),
});

const deliveryView = (d: DeliveryRecord) => ({
  EventId: d.event.id,
  EventType: d.event.type,
  Attempts: d.attempts,
  LastAttemptTime: d.attempts > 0 ? formatTime(d.lastAttemptAt) : '',
  LastStatusCode: d.lastStatusCode,
  Status: d.status,
});

export const describeWebhookDeliveries = defineAction({
  name: 'DescribeWebhookDeliveries',
  origin: 'smcd',
  summary: "Lists a webhook's deliveries, newest first.",
  signedBy: 'access-key',
  params: {
    WebhookId: webhookIdParam,
    Status: oneOf(['pending', 'delivered', 'failed'], { doc: 'pending | delivered | failed.' }),
    PageNumber: pageNumber,
    PageSize: pageSize(20),
  },
  response: obj({ ...pageFields, ...wrapped('Deliveries', 'Delivery', deliveryItem).fields }),
  async handler(ctx, p) {
    const { store } = ctx.services;
    if (!(await store.getWebhook(p.WebhookId))) throw errors.webhookNotFound();
    const { total, items } = await store.describeDeliveries({ webhookId: p.WebhookId, status: p.Status, ...pageOf(p) });
    return { TotalCount: total, PageNumber: p.PageNumber, PageSize: p.PageSize, Deliveries: { Delivery: items.map(deliveryView) } };
  },
});
