import { createHmac } from 'node:crypto';
import { percentEncode } from './percent.ts';

/**
 * Alibaba Cloud RPC signature V1 (HMAC-SHA1). Parameters are sorted by their raw
 * names in byte order, as the SDKs do, then names and values are percent-encoded.
 * https://www.alibabacloud.com/help/en/sdk/product-overview/rpc-mechanism
 */
export function v1StringToSign(method: string, params: Iterable<[string, string]>): string {
  const pairs: Array<[string, string]> = [];
  for (const pair of params) if (pair[0] !== 'Signature') pairs.push(pair);
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  let canonical = '';
  for (const [k, v] of pairs) canonical += `${canonical ? '&' : ''}${percentEncode(k)}=${percentEncode(v)}`;
  // percentEncode(canonical): its characters are unreserved or one of % = &, so only those change.
  return `${method}&%2F&${canonical.replace(/[%=&]/g, (c) => REENCODED[c] ?? c)}`;
}

const REENCODED: Record<string, string> = { '%': '%25', '=': '%3D', '&': '%26' };

export function v1Signature(method: string, params: Iterable<[string, string]>, secret: string): string {
  return createHmac('sha1', `${secret}&`).update(v1StringToSign(method, params)).digest('base64');
}
