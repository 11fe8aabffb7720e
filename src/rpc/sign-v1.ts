import { createHmac } from 'node:crypto';
import { percentEncode } from './percent.ts';

/**
 * Alibaba Cloud RPC signature V1 (HMAC-SHA1). Parameters are sorted by their raw
 * names in byte order, as the SDKs do, then names and values are percent-encoded.
 * https://www.alibabacloud.com/help/en/sdk/product-overview/rpc-mechanism
 */
export function v1StringToSign(method: string, params: Iterable<[string, string]>): string {
  const pairs = [...params].filter(([name]) => name !== 'Signature');
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const canonical = pairs.map(([k, v]) => `${percentEncode(k)}=${percentEncode(v)}`).join('&');
  return `${method}&${percentEncode('/')}&${percentEncode(canonical)}`;
}

export function v1Signature(method: string, params: Iterable<[string, string]>, secret: string): string {
  return createHmac('sha1', `${secret}&`).update(v1StringToSign(method, params)).digest('base64');
}
