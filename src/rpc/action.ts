import type { CredentialKind } from '../crypto/ids.ts';
import type { NonceUse } from '../store/store.ts';
import type { ParamDecls } from './params.ts';
import type { ObjectShape } from './shapes.ts';

/** Who signed a request, once the signature is proven. */
export interface Caller {
  kind: CredentialKind;
  keyId: string;
  /** Source keys: the source they belong to. */
  sourceId?: string;
}

/** What the wire knows of a request when it hands it to an action. */
export interface RequestContext {
  requestId: string;
  clientIp: string;
  now: number;
  /** The request's signature nonce (SignatureNonce, or x-acs-signature-nonce for V3). */
  signatureNonce: string;
  caller: Caller;
  /**
   * Set for an action that records its nonce with its own write (`nonce: 'with-write'`): the
   * handler hands it to that store write, which records it in the same commit.
   */
  nonce?: NonceUse;
}

/**
 * An operation as the wire dispatches it. The wire imports no action: server.ts hands it
 * the table (src/actions), whose entries validate their own parameters from their
 * declarations and return the response body without RequestId.
 */
export interface RpcAction {
  readonly name: string;
  /** SMC: exists in the public SMC API; smcd: ours, same conventions. */
  readonly origin: 'SMC' | 'smcd';
  readonly summary: string;
  /** Which credential kind signs it. */
  readonly signedBy: CredentialKind;
  /**
   * When its nonce is recorded; absent: by the wire, before the handler runs, in the commit the
   * answer waits for. `with-write`: the handler passes `ctx.nonce` to its one store write (one
   * commit, and on PostgreSQL one round trip fewer, per request). `may-lag`: the request may be
   * answered before its nonce is durable (API.md 5.1: a replay after a crash can only repeat it;
   * ReportSourceServerHeartbeat): still refused when seen again, but the store may write it
   * later in a batch, and the answer waits for no commit.
   */
  readonly nonce?: 'with-write' | 'may-lag';
  /**
   * Answered requests are logged at `debug`, not `info` (refusals stay at `info`): for the steady
   * load of a fleet, ReportSourceServerHeartbeat, whose every answer would be a line (100,000
   * sources at 30 s: 288 million a day). `smcd_requests_total` still counts each one.
   */
  readonly quiet?: boolean;
  readonly params: ParamDecls;
  readonly response: ObjectShape;
  dispatch(ctx: RequestContext, raw: ReadonlyMap<string, string>): Promise<Record<string, unknown>>;
}
