import { randomUUID } from 'node:crypto';
import { formatTime } from '../domain/time.ts';
import { percentEncode } from '../rpc/percent.ts';
import { v1Signature } from '../rpc/sign-v1.ts';

export interface ClientCredentials {
  accessKeyId: string;
  accessKeySecret: string;
}

export interface V1Options {
  method?: 'GET' | 'POST';
  nonce?: string;
  /** Default: now, as SMC writes times. */
  timestamp?: string;
  format?: 'JSON' | 'XML' | string;
}

/**
 * The V1-signed (HMAC-SHA1) parameter set of one call, exactly as the Alibaba SDKs send it:
 * the common parameters, the action's own, and Signature over all of them. The one place
 * smcd's clients (CLI, agent, tests, bench) build a signed request.
 */
export function signedV1Params(
  creds: ClientCredentials,
  action: string,
  params: Readonly<Record<string, string>>,
  opts: V1Options = {},
): Record<string, string> {
  const all: Record<string, string> = {
    Action: action,
    Version: '2019-06-01',
    Format: opts.format ?? 'JSON',
    AccessKeyId: creds.accessKeyId,
    SignatureMethod: 'HMAC-SHA1',
    SignatureVersion: '1.0',
    SignatureNonce: opts.nonce ?? randomUUID(),
    Timestamp: opts.timestamp ?? formatTime(Date.now()),
    ...params,
  };
  all.Signature = v1Signature(opts.method ?? 'POST', Object.entries(all), creds.accessKeySecret);
  return all;
}

/** `k=v&...` with the RFC 3986 encoding the signature used: a query string or a form body. */
export const encodeForm = (params: Readonly<Record<string, string>>): string =>
  Object.entries(params)
    .map(([k, v]) => `${percentEncode(k)}=${percentEncode(v)}`)
    .join('&');
