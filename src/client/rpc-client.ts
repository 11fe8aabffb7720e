import type { ActionName, ActionNamed } from '../actions/index.ts';
import type { ParamsIn } from '../rpc/params.ts';
import type { ValueOf } from '../rpc/shapes.ts';
import { type ClientCredentials, encodeForm, signedV1Params } from './v1-form.ts';

export type { ClientCredentials } from './v1-form.ts';

/** What a client sends for the action `N`, typed from its declaration. */
export type RequestOf<N extends ActionName> = ParamsIn<ActionNamed<N>['params']>;
/** What the action `N` answers, typed from its declaration. */
export type ResponseOf<N extends ActionName> = ValueOf<ActionNamed<N>['response']> & { RequestId: string };

/** An SMC-style error answer: Code and Message as the server gave them. */
export class ApiCallError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly requestId: string,
  ) {
    super(message);
    this.name = 'ApiCallError';
  }
}

/** The server could not be reached at all (refused, reset, DNS, timeout). */
export class ConnectionError extends Error {
  override name = 'ConnectionError';
}

/**
 * Flattens parameters the RPC way: lists as `Name.1=a&Name.2=b`, lists of objects as
 * `Name.1.Key=v`, JSON objects as their text.
 */
export function flattenParams(params: Readonly<Record<string, unknown>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined || value === null) continue;
    if (Array.isArray(value)) {
      value.forEach((item: unknown, i) => {
        if (item !== null && typeof item === 'object') {
          for (const [k, v] of Object.entries(item)) if (v !== undefined) out[`${name}.${i + 1}.${k}`] = String(v);
        } else if (item !== undefined) out[`${name}.${i + 1}`] = String(item);
      });
    } else out[name] = typeof value === 'object' ? JSON.stringify(value) : String(value);
  }
  return out;
}

/**
 * smcd's client: V1-signed POSTs with a form body, typed from the action table (the request
 * from each action's parameter declarations, the answer from its response shape). The CLI,
 * the agent, the tests and the bench use it; the compatibility tests use the Alibaba clients.
 */
export class RpcClient {
  constructor(
    readonly endpoint: string,
    private readonly credentials: ClientCredentials,
    private readonly timeoutMs = 30_000,
  ) {}

  /** `nonce`: the SignatureNonce to send, when a parameter is derived from it (the source proof). */
  call<N extends ActionName>(action: N, params: RequestOf<N>, opts: { nonce?: string } = {}): Promise<ResponseOf<N>> {
    return this.send(action, flattenParams(params), opts) as Promise<ResponseOf<N>>;
  }

  /** One signed call with parameters already in wire form; resolves with the JSON answer. */
  async send(action: string, params: Readonly<Record<string, string>>, opts: { nonce?: string } = {}): Promise<Record<string, unknown>> {
    const body = encodeForm(signedV1Params(this.credentials, action, params, { method: 'POST', nonce: opts.nonce }));
    let res: Response;
    try {
      res = await fetch(`${this.endpoint.replace(/\/+$/, '')}/`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new ConnectionError(`cannot reach ${this.endpoint}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
    }
    const text = await res.text();
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(text);
    } catch {
      throw new ApiCallError(res.status, 'InvalidResponse', `the server at ${this.endpoint} did not answer with JSON (HTTP ${res.status})`, '');
    }
    if (res.status >= 400 || typeof json.Code === 'string') {
      throw new ApiCallError(res.status, String(json.Code ?? 'Unknown'), String(json.Message ?? ''), String(json.RequestId ?? ''));
    }
    return json;
  }
}
