import { randomUUID } from 'node:crypto';
import { encodeForm, signedV1Params } from '../../src/client/v1-form.ts';
import { sha256Hex, v3CanonicalRequest, v3Signature } from '../../src/rpc/sign-v3.ts';

export interface Creds {
  id: string;
  secret: string;
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  text: string;
  /** Parsed JSON body (undefined for XML). */
  body: any;
}

export const timestampNow = (offsetMs = 0) => `${new Date(Date.now() + offsetMs).toISOString().slice(0, 19)}Z`;

async function toResponse(res: Response): Promise<ApiResponse> {
  const text = await res.text();
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, headers: res.headers, text, body };
}

export interface V1Options {
  method?: 'GET' | 'POST';
  nonce?: string;
  timestamp?: string;
  format?: string;
  /** Parameters to send but leave out of the signature (to test tampering). */
  unsigned?: Record<string, string>;
  /** Remove these signature parameters after signing. */
  drop?: string[];
  signatureMethod?: string;
}

/** The full V1-signed parameter set for `action`, as smcd's own client signs it, then tampered with as asked. */
export function v1Params(creds: Creds, action: string, params: Record<string, string>, opts: V1Options = {}): Record<string, string> {
  const all = signedV1Params(
    { accessKeyId: creds.id, accessKeySecret: creds.secret },
    action,
    opts.signatureMethod ? { ...params, SignatureMethod: opts.signatureMethod } : params,
    { method: opts.method ?? 'GET', nonce: opts.nonce, timestamp: opts.timestamp ?? timestampNow(), format: opts.format },
  );
  Object.assign(all, opts.unsigned);
  for (const d of opts.drop ?? []) delete all[d];
  return all;
}

export { encodeForm };

/** Sends a V1-signed request: GET with everything in the query, or POST with a form body. */
export async function callV1(baseUrl: string, creds: Creds, action: string, params: Record<string, string> = {}, opts: V1Options = {}) {
  const all = v1Params(creds, action, params, opts);
  const form = encodeForm(all);
  const res =
    (opts.method ?? 'GET') === 'GET'
      ? await fetch(`${baseUrl}/?${form}`)
      : await fetch(`${baseUrl}/`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form });
  return toResponse(res);
}

export interface V3Options {
  nonce?: string;
  date?: string;
  /** Send the parameters as a form body instead of the query. */
  body?: boolean;
  contentSha256?: string;
}

/** Sends an ACS3-HMAC-SHA256 (V3) request, with Action and Version as x-acs-* headers. */
export async function callV3(baseUrl: string, creds: Creds, action: string, params: Record<string, string> = {}, opts: V3Options = {}) {
  const url = new URL(baseUrl);
  const query = opts.body ? {} : params;
  const bodyText = opts.body ? encodeForm(params) : '';
  const headers: Record<string, string> = {
    host: url.host,
    'x-acs-action': action,
    'x-acs-version': '2019-06-01',
    'x-acs-date': opts.date ?? timestampNow(),
    'x-acs-signature-nonce': opts.nonce ?? randomUUID(),
    'x-acs-content-sha256': opts.contentSha256 ?? sha256Hex(bodyText),
  };
  if (opts.body) headers['content-type'] = 'application/x-www-form-urlencoded';
  const signedHeaders = Object.keys(headers).sort();
  const canonical = v3CanonicalRequest({
    method: 'POST',
    path: '/',
    query: Object.entries(query),
    headers,
    signedHeaders,
    payloadHash: headers['x-acs-content-sha256']!,
  });
  headers.authorization = `ACS3-HMAC-SHA256 Credential=${creds.id},SignedHeaders=${signedHeaders.join(';')},Signature=${v3Signature(canonical, creds.secret)}`;
  const qs = encodeForm(query);
  const res = await fetch(`${baseUrl}/${qs ? `?${qs}` : ''}`, { method: 'POST', headers, body: opts.body ? bodyText : undefined });
  return toResponse(res);
}

/** Unsigned request with a raw query string. */
export async function callRaw(baseUrl: string, query: string, init?: RequestInit) {
  return toResponse(await fetch(`${baseUrl}/?${query}`, init));
}

export const REQUEST_ID = /^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/;
