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
  // The canonical query `k=v&k=v`, percent-encoded once more as a whole. Its characters are
  // unreserved or one of % = &, so that outer encoding is written here directly: & and = as
  // %26 and %3D, and each % of an encoded name or value as %25.
  let signed = `${method}&%2F&`;
  for (let i = 0; i < pairs.length; i++) {
    const [k, v] = pairs[i] as [string, string];
    signed += `${i === 0 ? '' : '%26'}${encodeTwice(k)}%3D${encodeTwice(v)}`;
  }
  return signed;
}

function encodeTwice(value: string): string {
  const once = percentEncode(value);
  return once.includes('%') ? once.replaceAll('%', '%25') : once;
}

export function v1Signature(method: string, params: Iterable<[string, string]>, secret: string): string {
  return createHmac('sha1', `${secret}&`).update(v1StringToSign(method, params)).digest('base64');
}
