import type { RpcAction } from '../rpc/action.ts';
import { createAccessToken, deleteAccessToken, disableAccessToken, listAccessTokens } from './access-tokens.ts';
import { describeAuditEvents } from './audit-events.ts';
import type { Services } from './define.ts';
import {
  approveSourceServers,
  deleteSourceServer,
  describeSourceServers,
  importSourceServer,
  modifySourceServerAttribute,
  rejectSourceServers,
  reportSourceServerHeartbeat,
} from './source-servers.ts';
import { listTagResources, tagResources, untagResources } from './tags.ts';
import { createWebhook, deleteWebhook, describeWebhookDeliveries, listWebhooks } from './webhooks.ts';

/** The action table: every operation the API serves, declared once. */
export const ACTIONS = [
  createAccessToken,
  listAccessTokens,
  disableAccessToken,
  deleteAccessToken,
  importSourceServer,
  reportSourceServerHeartbeat,
  describeSourceServers,
  modifySourceServerAttribute,
  deleteSourceServer,
  approveSourceServers,
  rejectSourceServers,
  tagResources,
  untagResources,
  listTagResources,
  describeAuditEvents,
  createWebhook,
  listWebhooks,
  deleteWebhook,
  describeWebhookDeliveries,
] as const;

export type ActionTable = typeof ACTIONS;
export type ActionName = ActionTable[number]['name'];
/** The declared action of that name, with its parameter and response types. */
export type ActionNamed<N extends ActionName> = Extract<ActionTable[number], { name: N }>;

export function actionNamed<N extends ActionName>(name: N): ActionNamed<N> {
  const found = ACTIONS.find((a): a is ActionNamed<N> => a.name === name);
  if (!found) throw new Error(`no action ${name}`);
  return found;
}

/** Actions an operator's access key may be granted. */
export const OPERATOR_ACTIONS: readonly string[] = ACTIONS.filter((a) => a.signedBy === 'access-key').map((a) => a.name);

/** The table as the wire dispatches it, bound to the services its handlers use. */
export function bindActions(services: Services): ReadonlyMap<string, RpcAction> {
  return new Map(ACTIONS.map((a) => [a.name, a.bind(services)]));
}
