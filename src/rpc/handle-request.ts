import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BlockList } from 'node:net';
import type { Logger } from 'pino';
import { newRequestId } from '../crypto/ids.ts';
import type { Clock } from '../domain/time.ts';
import type { Metrics } from '../metrics.ts';
import { type NonceUse, NonceUsedError, type Store, StoreUnavailableError } from '../store/store.ts';
import type { RequestContext, RpcAction } from './action.ts';
import { clientAddress } from './client-address.ts';
import type { CredentialResolver } from './credentials.ts';
import { ApiError, AUTH_FAILURE_CODES, errors } from './errors.ts';
import { mergeParams, parseForm } from './parse-params.ts';
import { readBody } from './read-body.ts';
import { CONTENT_TYPES, type Format, HOST_ID, serialize } from './serialize.ts';
import { checkTimestamp, readSignature } from './signature.ts';
import type { AuthThrottle } from './throttle.ts';

export const API_VERSION = '2019-06-01';

export interface RpcLimits {
  maxBodyBytes: number;
  maxUrlBytes: number;
  /** How far a signed timestamp may be from the server's clock. */
  timestampWindowMs: number;
  /** How long a nonce is remembered: the window on both sides. */
  nonceTtlMs: number;
}

export const DEFAULT_LIMITS: RpcLimits = {
  maxBodyBytes: 64 * 1024,
  maxUrlBytes: 16 * 1024,
  timestampWindowMs: 15 * 60_000,
  nonceTtlMs: 30 * 60_000,
};

/** What the wire needs, handed to it by server.ts: the action table among it. */
export interface RpcDependencies {
  actions: ReadonlyMap<string, RpcAction>;
  credentials: CredentialResolver;
  /** Nonces and durability: useNonce (or the action's write records it), then settled() before any answer. */
  store: Pick<Store, 'useNonce' | 'settled'>;
  throttle: AuthThrottle;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  limits: RpcLimits;
  trustedProxies?: BlockList;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * The RPC pipeline. Checks run in the contract's order and the first failure
 * answers: method; size; Action; Version; signature form; timestamp; key; signature;
 * nonce; permission; parameters (API.md section 2).
 */
export function createRpcHandler(deps: RpcDependencies) {
  const { actions, credentials, store, throttle, clock, log, metrics, limits, trustedProxies } = deps;

  function toApiError(err: unknown, requestId: string): ApiError {
    if (err instanceof ApiError) return err;
    if (err instanceof NonceUsedError) return errors.nonceUsed();
    metrics.storeErrors.inc();
    if (err instanceof StoreUnavailableError) {
      log.warn({ requestId, err: err.message, cause: (err.cause as Error | undefined)?.message }, 'store unavailable');
      return errors.unavailable();
    }
    // Logged with the RequestId so an operator can find it; never shown to the client.
    log.error({ requestId, err }, 'internal error');
    return errors.internal();
  }

  /** Records a nonce its action's write did not (once only); false when it was used before. */
  function recordNonce(use: NonceUse): Promise<boolean> {
    use.written = true;
    return store.useNonce(use.keyId, use.nonce, use.now, use.expiresAt);
  }

  function send(
    res: ServerResponse,
    status: number,
    format: Format,
    root: string,
    body: Record<string, unknown> & { RequestId: string },
    close: boolean,
  ) {
    const text = serialize(format, root, body);
    const headers: Record<string, string | number> = {
      'content-type': CONTENT_TYPES[format],
      'content-length': Buffer.byteLength(text),
      'x-acs-request-id': body.RequestId,
    };
    if (close) headers.connection = 'close';
    res.writeHead(status, headers);
    res.end(text);
  }

  return async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const requestId = newRequestId();
    const clientIp = clientAddress(req.socket.remoteAddress, req.headers['x-forwarded-for'], trustedProxies);
    let format: Format = 'JSON';
    let actionName = '';
    let keyId: string | undefined;
    let bodyRead = false;
    let wrongSignatureFor: string | undefined;
    /** A nonce the action's write records (`nonce: 'with-write'`), until it has. */
    let pending: NonceUse | undefined;
    const now = clock();
    try {
      if (req.method !== 'GET' && req.method !== 'POST') throw errors.unsupportedMethod(req.method ?? '');
      const url = req.url ?? '/';
      if (Buffer.byteLength(url, 'latin1') > limits.maxUrlBytes) throw errors.uriTooLong(limits.maxUrlBytes);
      if (throttle.addressBlocked(clientIp, now)) throw errors.throttled();
      const body = await readBody(req, limits.maxBodyBytes);
      bodyRead = true;
      const q = url.indexOf('?');
      const path = q === -1 ? url : url.slice(0, q);
      if (path !== '/') throw errors.notFound();
      const query = parseForm(q === -1 ? '' : url.slice(q + 1));
      let bodyParams = new Map<string, string>();
      if (body.length > 0) {
        const type = (header(req, 'content-type') ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
        if (type !== 'application/x-www-form-urlencoded') throw errors.unsupportedMediaType(type || '(none)');
        bodyParams = parseForm(body.toString('latin1'));
      }
      const params = mergeParams(query, bodyParams);

      const formatParam = params.get('Format');
      const formatValid = formatParam === undefined || formatParam === '' || /^(json|xml)$/i.test(formatParam);
      if (formatValid && formatParam) format = formatParam.toUpperCase() === 'XML' ? 'XML' : 'JSON';

      // V1 signs its parameters, so Action and Version must be among them; only V3 signs the
      // x-acs-action / x-acs-version headers that may name the operation instead (API.md 5.1).
      const v3 = req.headers.authorization !== undefined;
      actionName = params.get('Action') ?? (v3 ? header(req, 'x-acs-action') : undefined) ?? '';
      if (!actionName) throw errors.missingAction();
      const action = actions.get(actionName);
      if (!action) throw errors.actionNotFound(actionName);
      const version = params.get('Version') ?? (v3 ? header(req, 'x-acs-version') : undefined);
      if (!version) throw errors.missingVersion();
      if (version !== API_VERSION) throw errors.invalidVersion(version);
      if (!formatValid) throw errors.invalidFormat();

      const claim = readSignature({ method: req.method, params, query, headers: req.headers, body });
      checkTimestamp(claim.timestamp, now, limits.timestampWindowMs);
      if (throttle.keyBlocked(claim.keyId, clientIp, now)) throw errors.throttled();
      const credential = await credentials.resolve(claim.keyId);
      if (!credential) throw errors.keyNotFound();
      if (!credential.active) throw errors.keyInactive();
      if (!claim.verify(credential.secret)) {
        wrongSignatureFor = claim.keyId;
        throw errors.signatureMismatch();
      }
      throttle.recordSuccess(claim.keyId, clientIp, now);
      // Only a proven signer can use up a nonce, so nobody can burn another client's nonces.
      // An action that writes records it in its own write (one commit; a replay changes
      // nothing and is refused there); a refusal before that write records it below. A
      // heartbeat's may lag: it is recorded, but the answer waits for no commit (API.md 5.1).
      const mayLag = action.nonce === 'may-lag';
      const expiresAt = now + limits.nonceTtlMs;
      if (action.nonce === 'with-write') pending = { keyId: claim.keyId, nonce: claim.nonce, now, expiresAt };
      else if (!(await store.useNonce(claim.keyId, claim.nonce, now, expiresAt, mayLag))) throw errors.nonceUsed();
      keyId = claim.keyId;
      const allowed =
        action.signedBy === credential.kind && (credential.allowedActions.includes(action.name) || credential.allowedActions.includes('*'));
      if (!allowed) throw errors.forbidden(action.name);

      const ctx: RequestContext = {
        requestId,
        clientIp,
        now,
        signatureNonce: claim.nonce,
        caller: { kind: credential.kind, keyId: credential.keyId, sourceId: credential.sourceId },
        nonce: pending,
      };
      const result = await action.dispatch(ctx, params);
      if (pending && !pending.written && !(await recordNonce(pending))) throw errors.nonceUsed();
      // Nothing is answered before what it rests on (its nonce, what it read) is on disk. API.md
      // 5.1 would let reads answer earlier too; measured under load, waiting for the group commit
      // serves more of them (answers, reads and commits batch together). A heartbeat waits for
      // no commit (its nonce needs no fsync, its beat is written in a later batch): it answers at once.
      if (!mayLag) await store.settled();
      send(res, 200, format, `${action.name}Response`, { RequestId: requestId, ...result }, false);
      metrics.requests.inc({ action: action.name, code: 'OK' });
      if (!action.quiet || log.isLevelEnabled('debug'))
        log[action.quiet ? 'debug' : 'info'](
          { requestId, action: action.name, status: 200, ms: +(performance.now() - started).toFixed(2), clientIp, keyId },
          'request',
        );
    } catch (err) {
      let apiError = toApiError(err, requestId);
      try {
        // Refused before its write recorded the nonce (permission, parameters, a failed
        // write): the nonce is used all the same, and a replay is answered as one, as the
        // contract's order of checks puts the nonce before permission and parameters.
        if (pending && !pending.written && !(err instanceof NonceUsedError) && !(await recordNonce(pending))) apiError = errors.nonceUsed();
        await store.settled();
      } catch (commitError) {
        apiError = toApiError(commitError, requestId);
      }
      if (AUTH_FAILURE_CODES.has(apiError.code)) throttle.recordFailure(clientIp, now, wrongSignatureFor);
      const errorBody = {
        RequestId: requestId,
        HostId: HOST_ID,
        Code: apiError.code,
        Message: apiError.message,
        Recommend: apiError.recommend,
      };
      // A body we did not read would be taken for the next request on this connection.
      send(res, apiError.status, format, 'Error', errorBody, !bodyRead);
      const known = actions.has(actionName) ? actionName : 'unknown';
      metrics.requests.inc({ action: known, code: apiError.code });
      log.info(
        {
          requestId,
          action: actionName.slice(0, 64),
          status: apiError.status,
          code: apiError.code,
          ms: +(performance.now() - started).toFixed(2),
          clientIp,
          keyId,
        },
        'request refused',
      );
    } finally {
      metrics.latency.observe({ action: actions.has(actionName) ? actionName : 'unknown' }, (performance.now() - started) / 1000);
    }
  };
}
