// Alibaba Cloud RPC signature V1 (HMAC-SHA1) in the browser, with Web Crypto.
// The same canonicalization as src/rpc/sign-v1.ts: parameters sorted by their raw
// names in byte order, then names and values percent-encoded as RFC 3986 (space
// %20, `*` %2A, `~` kept); StringToSign = METHOD&%2F&encode(canonical query).
// https://www.alibabacloud.com/help/en/sdk/product-overview/rpc-mechanism

/** RFC 3986 encoding: encodeURIComponent leaves !'()* alone, so those are escaped here. */
export function percentEncode(value) {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

export function stringToSign(method, params) {
  const pairs = Object.entries(params).filter(([name]) => name !== 'Signature');
  // Raw names, compared as the server compares them (parameter names are ASCII, so this is byte order).
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const canonical = pairs.map(([k, v]) => `${percentEncode(k)}=${percentEncode(v)}`).join('&');
  return `${method}&${percentEncode('/')}&${percentEncode(canonical)}`;
}

function base64(bytes) {
  let s = '';
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s);
}

/** Base64(HMAC-SHA1(secret + "&", StringToSign)). */
export async function signature(method, params, secret) {
  const enc = new TextEncoder();
  const key = await crypto.subtle.importKey('raw', enc.encode(`${secret}&`), { name: 'HMAC', hash: 'SHA-1' }, false, ['sign']);
  return base64(await crypto.subtle.sign('HMAC', key, enc.encode(stringToSign(method, params))));
}

/** SMC's time format: UTC, yyyy-MM-ddTHH:mm:ssZ. */
export const timestamp = (ms = Date.now()) => `${new Date(ms).toISOString().slice(0, 19)}Z`;

/** Web Crypto's subtle API exists only in secure contexts (HTTPS, or http://localhost / 127.0.0.1). */
export const canSign = () => Boolean(globalThis.isSecureContext && globalThis.crypto?.subtle);

/**
 * The complete signed parameter set for one POST call, as an application/x-www-form-urlencoded body.
 * `params` holds the action's own parameters, with lists already flattened (`Name.1`, `Name.2`).
 */
export async function signedForm(action, params, credentials) {
  const all = {
    Action: action,
    Version: '2019-06-01',
    Format: 'JSON',
    AccessKeyId: credentials.accessKeyId,
    SignatureMethod: 'HMAC-SHA1',
    SignatureVersion: '1.0',
    SignatureNonce: crypto.randomUUID(),
    Timestamp: timestamp(),
  };
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) all[k] = String(v);
  all.Signature = await signature('POST', all, credentials.accessKeySecret);
  return Object.entries(all)
    .map(([k, v]) => `${percentEncode(k)}=${percentEncode(v)}`)
    .join('&');
}
