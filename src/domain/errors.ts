/**
 * The one list of error codes (spec §10). Domain code throws DomainError(code); the HTTP layer maps
 * each code to its status once (http/plugins/error-status.ts).
 */
export const ERROR_CODES = [
  'validation_error',
  'missing_idempotency_key',
  'duplicate_idempotency_key_header',
  'unauthorized',
  'invalid_api_key',
  'agent_permission_denied',
  'agent_scope_error',
  'agent_revoked',
  'agent_suspended',
  'rotation_not_configured',
  'm3_fraud_block',
  'insufficient_scope',
  'agent_cap_exceeded',
  'delegation_depth_exceeded',
  'not_found',
  'idempotency_key_reused',
  'idempotency_in_progress',
  'key_suspended',
  'not_embedded',
  'backup_in_progress',
  'payload_too_large',
  'rate_limited',
  'bad_request',
  'request_timeout',
  'headers_too_large',
  'internal_error',
  'service_unavailable',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface ErrorDetail {
  field?: string;
  message: string;
  [extra: string]: unknown;
}

/** Default messages. invalid_api_key has exactly one message so it never tells tier or state apart. */
const DEFAULT_MESSAGE: Record<ErrorCode, string> = {
  validation_error: 'The request is invalid.',
  missing_idempotency_key: 'An Idempotency-Key header is required for this request.',
  duplicate_idempotency_key_header: 'Send the Idempotency-Key header once.',
  unauthorized: 'Authentication required: send Authorization: Bearer <key>.',
  invalid_api_key: 'The API key is invalid or has been revoked.',
  agent_permission_denied: "The key's permissions do not allow this action.",
  agent_scope_error: 'The key is scoped to another line.',
  agent_revoked: 'The agent key has been revoked.',
  agent_suspended: 'The agent key is suspended.',
  rotation_not_configured: 'Self-rotation is not configured for this key.',
  m3_fraud_block: 'The request was blocked.',
  insufficient_scope: "The operator token's scope does not allow this route.",
  agent_cap_exceeded: "The key's monthly spending cap would be exceeded.",
  delegation_depth_exceeded: 'The key is too deep in its delegation tree to delegate further.',
  not_found: 'Not found.',
  idempotency_key_reused: 'This Idempotency-Key was used with a different request.',
  idempotency_in_progress: 'A request with this Idempotency-Key is still in progress; retry shortly.',
  key_suspended: 'The key is suspended: resume it before rotating it.',
  not_embedded: 'This server runs on Postgres: back it up with pg_dump or point-in-time recovery.',
  backup_in_progress: 'A backup of this server is being taken; retry after the time given in Retry-After.',
  payload_too_large: 'The request body is too large.',
  rate_limited: 'Too many requests; retry after the time given in Retry-After.',
  bad_request: 'The request could not be read as HTTP.',
  request_timeout: 'The request was not received in time.',
  headers_too_large: 'The request headers are too large.',
  internal_error: 'An internal error occurred.',
  service_unavailable: 'The service is temporarily unavailable; retry after the time given in Retry-After.',
};

export interface ErrorHints {
  /** When a retry may succeed, in seconds (the HTTP layer sends it as Retry-After). */
  retryAfterSeconds?: number;
}

export class DomainError extends Error {
  constructor(
    readonly code: ErrorCode,
    message?: string,
    readonly details: ErrorDetail[] = [],
    readonly hints: ErrorHints = {},
  ) {
    super(message ?? DEFAULT_MESSAGE[code]);
    this.name = 'DomainError';
  }
}

export function defaultMessage(code: ErrorCode): string {
  return DEFAULT_MESSAGE[code];
}

export const notFound = () => new DomainError('not_found');
export const keySuspended = () => new DomainError('key_suspended');
export const invalidApiKey = () => new DomainError('invalid_api_key');
export const validationError = (message: string, details: ErrorDetail[] = []) =>
  new DomainError('validation_error', message, details);
