import type { Logger } from 'pino';
import type { CredentialKind } from '../crypto/ids.ts';
import type { SecretBox } from '../crypto/secret-box.ts';
import type { Clock } from '../domain/time.ts';
import type { Metrics } from '../metrics.ts';
import type { ParamDecl, Params } from '../rpc/params.ts';
import type { Store } from '../store/store.ts';

export interface ServiceSettings {
  /** Seconds between a source's heartbeats; three missed make it Unavailable. */
  heartbeatRateSeconds: number;
}

export interface Services {
  store: Store;
  box: SecretBox;
  clock: Clock;
  settings: ServiceSettings;
  log: Logger;
  metrics: Metrics;
}

export interface Caller {
  kind: CredentialKind;
  keyId: string;
  sourceId?: string;
}

export interface ActionContext {
  requestId: string;
  clientIp: string;
  now: number;
  /** The request's signature nonce (SignatureNonce, or x-acs-signature-nonce for V3). */
  signatureNonce: string;
  caller: Caller;
  services: Services;
}

export type ResponseBody = Record<string, unknown>;

export interface ActionDef {
  name: string;
  /** SMC: exists in the public SMC API; smcd: ours, same conventions. */
  origin: 'SMC' | 'smcd';
  summary: string;
  /** Which credential kind signs it. */
  signedBy: CredentialKind;
  params: readonly ParamDecl[];
  /** Response fields, for the API reference. */
  response: readonly string[];
  handler: (ctx: ActionContext, params: Params) => Promise<ResponseBody>;
}
