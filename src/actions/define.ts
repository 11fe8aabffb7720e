import type { Logger } from 'pino';
import type { SecretBox } from '../crypto/secret-box.ts';
import type { Clock } from '../domain/time.ts';
import type { Metrics } from '../metrics.ts';
import type { RequestContext, RpcAction } from '../rpc/action.ts';
import { type ParamDecls, type ParamsOf, validateParams } from '../rpc/params.ts';
import type { ObjectShape, ValueOf } from '../rpc/shapes.ts';
import type { Store } from '../store/store.ts';
import type { HeartbeatBuffer } from './heartbeat-buffer.ts';

export interface ServiceSettings {
  /** Seconds between a source's heartbeats; three missed make it Unavailable. */
  heartbeatRateSeconds: number;
}

/** What handlers work with, given once when the table is bound (server.ts). */
export interface Services {
  store: Store;
  /** Where heartbeats wait for their batched write. */
  heartbeats: HeartbeatBuffer;
  box: SecretBox;
  clock: Clock;
  settings: ServiceSettings;
  log: Logger;
  metrics: Metrics;
}

export interface ActionContext extends RequestContext {
  services: Services;
}

/** One declared action: its name, parameters and response as types, and its handler. */
export interface Action<N extends string = string, P extends ParamDecls = ParamDecls, R extends ObjectShape = ObjectShape>
  extends Omit<RpcAction, 'name' | 'params' | 'response' | 'dispatch'> {
  readonly name: N;
  readonly params: P;
  readonly response: R;
  /** The action as the wire dispatches it, with the services its handler uses. */
  bind(services: Services): RpcAction;
}

export interface ActionSpec<N extends string, P extends ParamDecls, R extends ObjectShape> extends Omit<Action<N, P, R>, 'bind'> {
  /** Receives the validated parameters with their declared types; returns the declared response. */
  handler(ctx: ActionContext, params: ParamsOf<P>): Promise<ValueOf<R>>;
}

/** Declares an action once: validation, docs, the client and the CLI all read this. */
export function defineAction<const N extends string, const P extends ParamDecls, const R extends ObjectShape>(
  spec: ActionSpec<N, P, R>,
): Action<N, P, R> {
  const { handler, ...declared } = spec;
  return {
    ...declared,
    bind: (services) => ({
      ...declared,
      dispatch: async (ctx, raw) => handler({ ...ctx, services }, validateParams(declared.params, raw)),
    }),
  };
}
