import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';

/** A certificate chain and its private key, PEM, as read from their files. */
export interface TlsPair {
  cert: Buffer;
  key: Buffer;
}

/** A certificate or key file smcd cannot use; the message names the file. */
export class TlsFileError extends Error {
  override name = 'TlsFileError';
}

function read(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new TlsFileError(`cannot read the TLS ${what} file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * Reads and checks a certificate/key pair: each file must parse, and the key must be the
 * certificate's. Checked here so that a bad pair is refused at start, or kept out on SIGHUP,
 * instead of failing every handshake.
 */
export function readTlsPair(certFile: string, keyFile: string): TlsPair {
  const cert = read(certFile, 'certificate');
  const key = read(keyFile, 'key');
  try {
    new X509Certificate(cert);
  } catch {
    throw new TlsFileError(`the TLS certificate file ${certFile} holds no PEM certificate`);
  }
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    const mismatch = /KEY_VALUES_MISMATCH|key values mismatch/i.test(String((err as Error).message));
    throw new TlsFileError(
      mismatch
        ? `the TLS key file ${keyFile} is not the key of the certificate in ${certFile}`
        : `the TLS key file ${keyFile} holds no usable private key (${(err as Error).message})`,
    );
  }
  return { cert, key };
}
