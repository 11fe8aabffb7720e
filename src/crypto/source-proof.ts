import { createHmac } from 'node:crypto';
import { safeEqual } from './compare.ts';

/**
 * Proof that an importer holds a source's key (API.md section 5.2): lowercase hex
 * HMAC-SHA256 under the source key secret of MachineId + "\n" + the request's signature
 * nonce. The nonce makes each proof single-use, as the nonce itself is.
 */
export function sourceProof(sourceKeySecret: string, machineId: string, signatureNonce: string): string {
  return createHmac('sha256', sourceKeySecret).update(`${machineId}\n${signatureNonce}`).digest('hex');
}

export function isValidSourceProof(proof: string, sourceKeySecret: string, machineId: string, signatureNonce: string): boolean {
  return safeEqual(proof.toLowerCase(), sourceProof(sourceKeySecret, machineId, signatureNonce));
}
