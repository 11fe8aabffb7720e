import { createHash, createHmac } from 'node:crypto';
import { percentEncode } from './percent.ts';

export const V3_ALGORITHM = 'ACS3-HMAC-SHA256';

export interface V3Request {
  method: string;
  path: string;
  /** Decoded query parameters. */
  query: Iterable<[string, string]>;
  /** Lower-cased header names. */
  headers: Record<string, string | string[] | undefined>;
  signedHeaders: readonly string[];
  payloadHash: string;
}

export const sha256Hex = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

/**
 * The canonical request of Alibaba Cloud signature V3:
 * method, path, sorted encoded query, `name:value\n` for each signed header,
 * the signed header list, and the payload hash, joined by newlines.
 * https://www.alibabacloud.com/help/en/sdk/product-overview/v3-request-structure-and-signature
 */
export function v3CanonicalRequest(req: V3Request): string {
  const query = [...req.query].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const canonicalQuery = query.map(([k, v]) => `${percentEncode(k)}=${percentEncode(v)}`).join('&');
  let canonicalHeaders = '';
  for (const name of req.signedHeaders) {
    const value = req.headers[name];
    const text = Array.isArray(value)
      ? value
          .map((v) => v.trim())
          .sort()
          .join(',')
      : (value ?? '').trim();
    canonicalHeaders += `${name}:${text}\n`;
  }
  return [req.method, req.path, canonicalQuery, canonicalHeaders, req.signedHeaders.join(';'), req.payloadHash].join('\n');
}

export function v3Signature(canonicalRequest: string, secret: string): string {
  const stringToSign = `${V3_ALGORITHM}\n${sha256Hex(canonicalRequest)}`;
  return createHmac('sha256', secret).update(stringToSign).digest('hex');
}
