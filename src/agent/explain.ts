import { ApiCallError, ConnectionError } from '../client/rpc-client.ts';

/** A refusal or failure the agent explains in one line; the command exits 1 with it. */
export class AgentError extends Error {
  override name = 'AgentError';
}

/**
 * One line an operator can act on. Only ids and the endpoint appear in it: never the
 * activation code or a source key secret (the server's messages do not echo them either).
 */
export function explainFailure(err: unknown, ctx: { endpoint: string; tokenId?: string | undefined }): string {
  if (err instanceof AgentError) return err.message;
  if (err instanceof ConnectionError) return `${err.message} (is the smcd server running, and is --endpoint right?)`;
  if (!(err instanceof ApiCallError)) return `unexpected failure: ${(err as Error)?.message ?? String(err)}`;
  const which = (apiCode: string) => `(${ctx.tokenId ? `${ctx.tokenId}, ` : ''}${apiCode})`;
  switch (err.code) {
    case 'AccessToken.Expired':
      return `the activation code has expired: create a new one ${which(err.code)}`;
    case 'AccessToken.Disabled':
      return `the activation code has been disabled: ask for a new one ${which(err.code)}`;
    case 'AccessToken.CountExceeded':
      return `the activation code has been used the maximum number of times: create a new one; machines it imported before can still re-import with it ${which(err.code)}`;
    case 'AccessToken.IpNotAllowed':
      return `the activation code may not be used from this machine's address: ${err.message} Its IpAddressRange does not include the address the server at ${ctx.endpoint} sees this machine connect from; import from an allowed address or use a code whose range includes it ${which(err.code)}`;
    case 'SourceServer.MachineIdInUse':
      return `another source already owns this machine's MachineId, and this machine does not hold that source's key: ${err.message} If this machine is a clone, give it its own id (--machine-id or SMCD_AGENT_MACHINE_ID); otherwise delete that source (smcd source delete) or import from the machine that holds its key (SourceServer.MachineIdInUse)`;
    case 'InvalidAccessKeyId.NotFound':
      return `the activation code${ctx.tokenId ? ` ${ctx.tokenId}` : ''} is not known to ${ctx.endpoint}: it was mistyped or has been deleted (InvalidAccessKeyId.NotFound)`;
    case 'SignatureDoesNotMatch':
      return `the activation code does not match its id${ctx.tokenId ? ` ${ctx.tokenId}` : ''}: check --token-code / SMCD_CODE (SignatureDoesNotMatch)`;
    case 'Throttling.User':
      return `${ctx.endpoint} is refusing this address after too many failed authentications (Throttling.User): wait a minute, check the code, and try again`;
    case 'InvalidTimeStamp.Expired':
      return `this machine's clock is more than 15 minutes away from the server's: set the clock (NTP) and try again`;
    case 'ServiceUnavailable':
      return `${ctx.endpoint} cannot reach its store right now (ServiceUnavailable): try again shortly`;
    case 'Forbidden.RAM':
      return `the credential is not an activation code: --token-id must be the AccessTokenId (at-...) that CreateAccessToken returned`;
    case 'InvalidResponse':
      return err.message;
    default:
      return `${ctx.endpoint} refused the request: ${err.code}: ${err.message}`;
  }
}

/** Failures worth retrying at the next beat: the server or the path to it, not the credential. */
export function isTransient(err: unknown): boolean {
  if (err instanceof ConnectionError) return true;
  if (!(err instanceof ApiCallError)) return false;
  return (
    err.status >= 500 || ['Throttling.User', 'InvalidResponse', 'SignatureNonceUsed', 'InvalidTimeStamp.Expired', 'RequestTimeout'].includes(err.code)
  );
}

/** The server no longer accepts this source key: the source was deleted, or the key rotated by another import. */
export function isKeyRejected(err: unknown): boolean {
  return (
    err instanceof ApiCallError &&
    ['InvalidAccessKeyId.NotFound', 'InvalidAccessKeyId.Inactive', 'SignatureDoesNotMatch', 'InvalidSourceId.NotFound', 'Forbidden.RAM'].includes(
      err.code,
    )
  );
}
