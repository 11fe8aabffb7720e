/**
 * Every error the API returns, in one place: Code, HTTP status and message.
 * Handlers throw these by name; only src/rpc turns them into response bodies.
 * Codes and messages follow SMC's (API.md section 3).
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly recommend = 'Check the request against the smcd API reference (README.md, "API reference").',
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

const INTERNAL = 'An error occurred while processing your request. Please try again. If the problem still exists, please submit a ticket.';

export const errors = {
  // transport
  unsupportedMethod: (method: string) =>
    new ApiError(403, 'UnsupportedHTTPMethod', `The HTTP method ${clip(method)} is not supported. Use GET or POST.`),
  entityTooLarge: (limit: number) => new ApiError(413, 'RequestEntityTooLarge', `The request body exceeds the limit of ${limit} bytes.`),
  uriTooLong: (limit: number) => new ApiError(414, 'RequestURITooLong', `The request URL exceeds the limit of ${limit} bytes.`),
  headersTooLarge: () => new ApiError(431, 'RequestHeaderFieldsTooLarge', 'The request headers are too large.'),
  badRequest: () => new ApiError(400, 'BadRequest', 'The request is not valid HTTP.'),
  requestTimeout: () => new ApiError(408, 'RequestTimeout', 'The request was not received in time.'),
  unsupportedMediaType: (type: string) =>
    new ApiError(
      415,
      'UnsupportedMediaType',
      `The content type ${clip(type)} is not supported. Send parameters in the query string or as application/x-www-form-urlencoded.`,
    ),
  badEncoding: () =>
    new ApiError(400, 'InvalidParameter.Encoding', 'The request contains invalid percent-encoding, invalid UTF-8 or a NUL character.'),
  duplicateParameter: (name: string) => new ApiError(400, 'InvalidParameter.Duplicate', `The parameter ${clip(name)} is given more than once.`),
  notFound: () => new ApiError(404, 'NotFound', 'The specified path does not exist. The API is served at /.'),

  // dispatch
  missingAction: () => new ApiError(400, 'MissingAction', 'Action is mandatory for this request.'),
  actionNotFound: (action: string) => new ApiError(404, 'InvalidAction.NotFound', `The specified action ${clip(action)} is not found.`),
  missingVersion: () => new ApiError(400, 'MissingVersion', 'Version is mandatory for this request.'),
  invalidVersion: (version: string) => new ApiError(400, 'InvalidVersion', `The specified version ${clip(version)} is not valid. Use 2019-06-01.`),
  invalidFormat: () => new ApiError(400, 'InvalidParameter.Format', 'The specified Format is not valid. Use JSON or XML.'),

  // authentication
  incompleteSignature: (detail: string) =>
    new ApiError(400, 'IncompleteSignature', `The request signature does not conform to Aliyun standards: ${detail}`),
  missingSignatureParam: (name: string) => new ApiError(400, `Missing${name}`, `${name} is mandatory for this action.`),
  invalidSignatureMethod: (what: string) =>
    new ApiError(
      400,
      'InvalidSignatureMethod',
      `The signature method ${clip(what)} is not supported. Use HMAC-SHA1 with SignatureVersion 1.0, or ACS3-HMAC-SHA256.`,
    ),
  timestampFormat: () =>
    new ApiError(400, 'InvalidTimeStamp.Format', 'The specified timestamp is not valid. Use UTC in the form yyyy-MM-ddTHH:mm:ssZ.'),
  timestampExpired: () => new ApiError(400, 'InvalidTimeStamp.Expired', 'The specified timestamp is more than 15 minutes away from the server time.'),
  nonceUsed: () => new ApiError(400, 'SignatureNonceUsed', 'The request signature nonce has been used.'),
  keyNotFound: () => new ApiError(404, 'InvalidAccessKeyId.NotFound', 'The specified AccessKeyId is not found.'),
  keyInactive: () => new ApiError(400, 'InvalidAccessKeyId.Inactive', 'The specified AccessKeyId is disabled.'),
  signatureMismatch: (detail = 'Please check your AccessKeySecret and the way the request is signed.') =>
    new ApiError(400, 'SignatureDoesNotMatch', `The request signature does not match. ${detail}`),
  forbidden: (action: string) => new ApiError(403, 'Forbidden.RAM', `The credential is not authorized to perform ${clip(action)}.`),
  throttled: () => new ApiError(429, 'Throttling.User', 'Request was denied due to user flow control. Please try again later.'),

  // parameters
  missingParameter: (name: string) => new ApiError(400, `Missing${name}`, `${name} is mandatory for this action.`),
  invalidParameter: (name: string, rule: string) =>
    new ApiError(400, `InvalidParameter.${name}`, `The specified parameter ${name} is not valid: ${rule}`),
  idempotentMismatch: () => new ApiError(409, 'IdempotentParameterMismatch', 'The ClientToken was used before with different parameters.'),

  // resources
  accessTokenNotFound: (id?: string) =>
    new ApiError(404, 'InvalidAccessTokenId.NotFound', `The specified AccessTokenId${id === undefined ? '' : ` ${clip(id)}`} does not exist.`),
  sourceNotFound: (id?: string) =>
    new ApiError(404, 'InvalidSourceId.NotFound', `The specified SourceId${id === undefined ? '' : ` ${clip(id)}`} does not exist.`),
  tooManyTags: (resourceId: string, max: number) =>
    new ApiError(
      400,
      'InvalidParameter.TagCount',
      `The resource ${clip(resourceId)} would have more than ${max} tags.`,
      'Remove tags first (UntagResources).',
    ),
  webhookNotFound: () => new ApiError(404, 'InvalidWebhookId.NotFound', 'The specified WebhookId does not exist.'),
  tokenExpired: () => new ApiError(403, 'AccessToken.Expired', 'The activation code has expired.'),
  tokenDisabled: () => new ApiError(403, 'AccessToken.Disabled', 'The activation code has been disabled.'),
  tokenCountExceeded: () => new ApiError(403, 'AccessToken.CountExceeded', 'The activation code has been used the maximum number of times.'),
  tokenIpNotAllowed: (clientIp: string) =>
    new ApiError(403, 'AccessToken.IpNotAllowed', `The activation code may not be used from this address (${clip(clientIp)}).`),

  machineIdInUse: (sourceId: string) =>
    new ApiError(
      409,
      'SourceServer.MachineIdInUse',
      `This MachineId already belongs to source ${clip(sourceId)}, and the request does not prove it holds that source's key (SourceKeyId and SourceProof).`,
      `Import from the machine that holds the key of ${clip(sourceId)}, or delete that source first (DeleteSourceServer); a cloned machine needs its own MachineId.`,
    ),

  // server
  internal: () => new ApiError(500, 'InternalError', INTERNAL),
  unavailable: () => new ApiError(503, 'ServiceUnavailable', 'The service is temporarily unavailable: the store cannot be reached. Please retry.'),
} as const;

export type ErrorName = keyof typeof errors;

/** Codes that count as a failed authentication for per-address throttling. */
export const AUTH_FAILURE_CODES = new Set([
  'IncompleteSignature',
  'MissingAccessKeyId',
  'MissingSignature',
  'MissingSignatureMethod',
  'MissingSignatureVersion',
  'MissingSignatureNonce',
  'MissingTimestamp',
  'InvalidSignatureMethod',
  'InvalidTimeStamp.Format',
  'InvalidTimeStamp.Expired',
  'SignatureNonceUsed',
  'InvalidAccessKeyId.NotFound',
  'InvalidAccessKeyId.Inactive',
  'SignatureDoesNotMatch',
]);

/** Echoed client input is clipped so an error body stays small. */
function clip(value: string): string {
  return value.length > 64 ? `${value.slice(0, 64)}...` : value;
}
