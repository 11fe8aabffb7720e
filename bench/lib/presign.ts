import { randomBytes } from 'node:crypto';
import { encodeForm, signedV1Params } from '../../src/client/v1-form.ts';

export interface Creds {
  id: string;
  secret: string;
}

/** One API call, before it is written out as HTTP. */
export interface Call {
  method: 'GET' | 'POST';
  /** The V1-signed form: the query of a GET, the body of a POST. */
  form: string;
}

const timestamp = () => `${new Date().toISOString().slice(0, 19)}Z`;
/** Nonces are `<run prefix>-<counter>`: unique within a run, and each run has its own prefix. */
const runPrefix = randomBytes(6).toString('hex');
let nonceCounter = 0;

/** A V1-signed (HMAC-SHA1) form, exactly as the Alibaba SDKs send it (smcd's client signs it). */
export function signedForm(creds: Creds, method: 'GET' | 'POST', action: string, params: Record<string, string>): string {
  return encodeForm(
    signedV1Params({ accessKeyId: creds.id, accessKeySecret: creds.secret }, action, params, {
      method,
      nonce: `${runPrefix}-${++nonceCounter}`,
      timestamp: timestamp(),
    }),
  );
}

export const signedCall = (creds: Creds, method: 'GET' | 'POST', action: string, params: Record<string, string>): Call => ({
  method,
  form: signedForm(creds, method, action, params),
});

/** The bytes of one HTTP/1.1 keep-alive request (all ASCII: the form is percent-encoded). */
export function httpText(call: Call, host: string): string {
  return call.method === 'GET'
    ? `GET /?${call.form} HTTP/1.1\r\nHost: ${host}\r\nConnection: keep-alive\r\n\r\n`
    : `POST / HTTP/1.1\r\nHost: ${host}\r\nConnection: keep-alive\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: ${call.form.length}\r\n\r\n${call.form}`;
}

/**
 * Requests for one connection, written out once: one Buffer and the offsets of each
 * request in it. Outside the V8 heap, so a pool of a million requests costs the client
 * no garbage-collection pauses (an array of request objects that size did: seconds).
 */
export interface RequestPool {
  buffer: Buffer;
  offsets: Uint32Array;
  count: number;
}

/** `make(i)` for i in [0, count), dealt round-robin into one pool per connection. */
export function presign(count: number, connections: number, host: string, make: (i: number) => Call): RequestPool[] {
  const texts: string[][] = Array.from({ length: connections }, () => []);
  for (let i = 0; i < count; i++) texts[i % connections]?.push(httpText(make(i), host));
  return texts.map((list) => {
    const offsets = new Uint32Array(list.length + 1);
    list.forEach((text, i) => {
      offsets[i + 1] = (offsets[i] ?? 0) + text.length;
    });
    return { buffer: Buffer.from(list.join(''), 'latin1'), offsets, count: list.length };
  });
}
