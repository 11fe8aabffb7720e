import { safeEqual } from '../crypto/compare.ts';
import { errors } from './errors.ts';
import { v1Signature } from './sign-v1.ts';
import { sha256Hex, V3_ALGORITHM, v3CanonicalRequest, v3Signature } from './sign-v3.ts';

export interface IncomingSigned {
  method: string;
  /** All parameters, query and body. */
  params: Map<string, string>;
  /** Query parameters alone (V3 signs the body through its hash instead). */
  query: Map<string, string>;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** What a request claims about its signer, before anything is checked against the store. */
export interface SignatureClaim {
  version: 'v1' | 'v3';
  keyId: string;
  timestamp: string;
  nonce: string;
  /** Constant-time check of the request's signature under `secret`. */
  verify(secret: string): boolean;
}

/** Nonces are stored and indexed; SDKs send UUIDs or 32-64 hex characters. */
const MAX_NONCE = 256;

function checkNonce(nonce: string): string {
  if (nonce.length > MAX_NONCE) throw errors.incompleteSignature(`the signature nonce is longer than ${MAX_NONCE} characters.`);
  return nonce;
}

const V1_REQUIRED = ['AccessKeyId', 'Signature', 'SignatureMethod', 'SignatureNonce', 'Timestamp'] as const;
const V1_MARKERS = [...V1_REQUIRED, 'SignatureVersion'];

function header(headers: IncomingSigned['headers'], name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

/**
 * Reads the signature parameters (V1) or the Authorization header (V3) and
 * checks that they are complete and well-formed. Throws the SMC error otherwise.
 */
export function readSignature(req: IncomingSigned): SignatureClaim {
  const authorization = header(req.headers, 'authorization');
  if (authorization !== undefined) return readV3(req, authorization);
  if (V1_MARKERS.some((name) => req.params.has(name))) return readV1(req);
  throw errors.incompleteSignature('no AccessKeyId, Signature or Authorization was given.');
}

function readV1(req: IncomingSigned): SignatureClaim {
  const required = (name: (typeof V1_REQUIRED)[number]): string => {
    const value = req.params.get(name);
    if (!value) throw errors.missingSignatureParam(name);
    return value;
  };
  // In V1_REQUIRED's order, so the first missing one is the one named.
  const keyId = required('AccessKeyId');
  const given = required('Signature');
  const method = required('SignatureMethod');
  const nonce = required('SignatureNonce');
  const timestamp = required('Timestamp');
  if (method !== 'HMAC-SHA1') throw errors.invalidSignatureMethod(method);
  const version = req.params.get('SignatureVersion') ?? '1.0';
  if (version !== '1.0') throw errors.invalidSignatureMethod(`SignatureVersion ${version}`);
  return {
    version: 'v1',
    keyId,
    timestamp,
    nonce: checkNonce(nonce),
    verify: (secret) => safeEqual(v1Signature(req.method, req.params, secret), given),
  };
}

function readV3(req: IncomingSigned, authorization: string): SignatureClaim {
  const space = authorization.indexOf(' ');
  const algorithm = space === -1 ? authorization : authorization.slice(0, space);
  if (algorithm !== V3_ALGORITHM) throw errors.invalidSignatureMethod(algorithm);
  const fields = new Map<string, string>();
  for (const part of authorization.slice(space + 1).split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const keyId = fields.get('Credential');
  const signedHeaderList = fields.get('SignedHeaders');
  const given = fields.get('Signature');
  if (!keyId || !signedHeaderList || !given) throw errors.incompleteSignature('Authorization needs Credential, SignedHeaders and Signature.');
  const signedHeaders = signedHeaderList.split(';');
  if (signedHeaders.some((h) => h !== h.toLowerCase() || h === ''))
    throw errors.incompleteSignature('SignedHeaders must be lower-case header names separated by ";".');
  const date = header(req.headers, 'x-acs-date');
  const nonce = header(req.headers, 'x-acs-signature-nonce');
  const contentHash = header(req.headers, 'x-acs-content-sha256');
  if (!date) throw errors.incompleteSignature('the x-acs-date header is missing.');
  if (!nonce) throw errors.incompleteSignature('the x-acs-signature-nonce header is missing.');
  if (!contentHash) throw errors.incompleteSignature('the x-acs-content-sha256 header is missing.');
  // Every x-acs-* header and host must be signed, so none can be altered in flight.
  for (const name of Object.keys(req.headers)) {
    if ((name.startsWith('x-acs-') || name === 'host') && !signedHeaders.includes(name))
      throw errors.incompleteSignature(`the ${name} header must be signed.`);
  }
  return {
    version: 'v3',
    keyId,
    timestamp: date,
    nonce: checkNonce(nonce),
    verify(secret) {
      // The body hash is checked inside verify so that it runs after the key is known, like the signature.
      if (!safeEqual(sha256Hex(req.body), contentHash.toLowerCase())) return false;
      const canonical = v3CanonicalRequest({
        method: req.method,
        path: '/',
        query: req.query,
        headers: req.headers,
        signedHeaders,
        payloadHash: contentHash,
      });
      return safeEqual(v3Signature(canonical, secret), given.toLowerCase());
    },
  };
}

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;

/** Parses the signed timestamp and checks it is within the window of `now`. */
export function checkTimestamp(timestamp: string, now: number, windowMs: number): void {
  const ms = TIMESTAMP.test(timestamp) ? Date.parse(timestamp) : Number.NaN;
  if (Number.isNaN(ms)) throw errors.timestampFormat();
  if (Math.abs(ms - now) > windowMs) throw errors.timestampExpired();
}
