import { randomUUID } from 'node:crypto';
import { formatTime } from '../domain/time.ts';
import { percentEncode } from '../rpc/percent.ts';
import { v1Signature } from '../rpc/sign-v1.ts';

export interface ClientCredentials {
  accessKeyId: string;
  accessKeySecret: string;
}

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

export type Scalar = string | number | undefined;

/** Flattens lists the RPC way: `{ Name: ['a','b'] }` becomes `Name.1=a&Name.2=b`. */
export function flattenParams(params: Record<string, Scalar | Scalar[] | Array<Record<string, Scalar>>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined) continue;
    if (!Array.isArray(value)) {
      out[name] = String(value);
      continue;
    }
    value.forEach((item, i) => {
      if (item !== null && typeof item === 'object') {
        for (const [k, v] of Object.entries(item)) if (v !== undefined) out[`${name}.${i + 1}.${k}`] = String(v);
      } else if (item !== undefined) out[`${name}.${i + 1}`] = String(item);
    });
  }
  return out;
}

/**
 * Minimal SMC RPC client: V1 (HMAC-SHA1) signed POST with a form body. Used by
 * the CLI and the agent; the tests use the Alibaba clients themselves.
 */
export class RpcClient {
  constructor(
    readonly endpoint: string,
    private readonly credentials: ClientCredentials,
    private readonly timeoutMs = 30_000,
  ) {}

  /** `nonce`: the SignatureNonce to send, when a parameter must be derived from it (the source proof). */
  async call<T = Record<string, unknown>>(action: string, params: Parameters<typeof flattenParams>[0] = {}, opts: { nonce?: string } = {}): Promise<T> {
    const all: Record<string, string> = {
      Action: action,
      Version: '2019-06-01',
      Format: 'JSON',
      AccessKeyId: this.credentials.accessKeyId,
      SignatureMethod: 'HMAC-SHA1',
      SignatureVersion: '1.0',
      SignatureNonce: opts.nonce ?? randomUUID(),
      Timestamp: formatTime(Date.now()),
      ...flattenParams(params),
    };
    all.Signature = v1Signature('POST', Object.entries(all), this.credentials.accessKeySecret);
    const body = Object.entries(all)
      .map(([k, v]) => `${percentEncode(k)}=${percentEncode(v)}`)
      .join('&');
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
    return json as T;
  }
}
