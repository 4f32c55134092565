/**
 * The one list of error codes (spec §10). Domain code throws DomainError(code); http/errors.ts maps
 * each code to its status once.
 */
export const ERROR_STATUS = {
  validation_error: 422,
  missing_idempotency_key: 400,
  duplicate_idempotency_key_header: 400,
  unauthorized: 401,
  invalid_api_key: 401,
  agent_permission_denied: 403,
  agent_scope_error: 403,
  agent_revoked: 403,
  rotation_not_configured: 403,
  m3_fraud_block: 403,
  agent_cap_exceeded: 402,
  not_found: 404,
  idempotency_key_reused: 409,
  idempotency_in_progress: 409,
  payload_too_large: 413,
  rate_limited: 429,
  internal_error: 500,
  service_unavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

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
  rotation_not_configured: 'Self-rotation is not configured for this key.',
  m3_fraud_block: 'The request was blocked.',
  agent_cap_exceeded: "The key's monthly spending cap would be exceeded.",
  not_found: 'Not found.',
  idempotency_key_reused: 'This Idempotency-Key was used with a different request.',
  idempotency_in_progress: 'A request with this Idempotency-Key is still in progress; retry shortly.',
  payload_too_large: 'The request body is too large.',
  rate_limited: 'Too many requests; retry after the time given in Retry-After.',
  internal_error: 'An internal error occurred.',
  service_unavailable: 'The service is temporarily unavailable; retry after the time given in Retry-After.',
};

export class DomainError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message?: string,
    readonly details: ErrorDetail[] = [],
    /** Extra response headers, e.g. Retry-After. */
    readonly headers: Record<string, string> = {},
  ) {
    super(message ?? DEFAULT_MESSAGE[code]);
    this.name = 'DomainError';
    this.status = ERROR_STATUS[code];
  }
}

export function defaultMessage(code: ErrorCode): string {
  return DEFAULT_MESSAGE[code];
}

export const notFound = () => new DomainError('not_found');
export const invalidApiKey = () => new DomainError('invalid_api_key');
export const validationError = (message: string, details: ErrorDetail[] = []) =>
  new DomainError('validation_error', message, details);
