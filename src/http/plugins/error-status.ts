import type { ErrorCode } from '../../domain/errors.js';

/** The HTTP status of each error code (spec §10): the one code → status map. */
export const ERROR_STATUS = {
  validation_error: 422,
  missing_idempotency_key: 400,
  duplicate_idempotency_key_header: 400,
  unauthorized: 401,
  invalid_api_key: 401,
  agent_permission_denied: 403,
  agent_scope_error: 403,
  agent_revoked: 403,
  agent_suspended: 403,
  rotation_not_configured: 403,
  m3_fraud_block: 403,
  insufficient_scope: 403,
  agent_cap_exceeded: 402,
  delegation_depth_exceeded: 403,
  not_found: 404,
  idempotency_key_reused: 409,
  idempotency_in_progress: 409,
  key_suspended: 409,
  not_embedded: 409,
  backup_in_progress: 409,
  payload_too_large: 413,
  rate_limited: 429,
  bad_request: 400,
  request_timeout: 408,
  headers_too_large: 431,
  internal_error: 500,
  service_unavailable: 503,
} as const satisfies Record<ErrorCode, number>;

export const statusOf = (code: ErrorCode): number => ERROR_STATUS[code];
