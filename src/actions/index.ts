import { createAccessToken, deleteAccessToken, disableAccessToken, listAccessTokens } from './access-tokens.ts';
import {
  deleteSourceServer,
  describeSourceServers,
  importSourceServer,
  modifySourceServerAttribute,
  reportSourceServerHeartbeat,
} from './source-servers.ts';
import type { ActionDef } from './types.ts';

/** The action table: every operation the API serves, declared once. */
export const ACTIONS: readonly ActionDef[] = [
  createAccessToken,
  listAccessTokens,
  disableAccessToken,
  deleteAccessToken,
  importSourceServer,
  reportSourceServerHeartbeat,
  describeSourceServers,
  modifySourceServerAttribute,
  deleteSourceServer,
];

export const ACTIONS_BY_NAME: ReadonlyMap<string, ActionDef> = new Map(ACTIONS.map((a) => [a.name, a]));

/** Actions an operator's access key may be granted. */
export const OPERATOR_ACTIONS = ACTIONS.filter((a) => a.signedBy === 'access-key').map((a) => a.name);
