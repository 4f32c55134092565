import { z } from 'zod';
import type { ErrorCode } from '../../domain/errors.js';
import { ERROR_STATUS } from '../plugins/error-status.js';

/**
 * The error envelope of spec §10, one named schema per HTTP status, so that the OpenAPI document
 * (and a client generated from it) says exactly which codes each status can carry. Each schema's
 * code list is derived from ERROR_STATUS, the one code→status map, so a route can never throw a
 * code its declared status schema rejects. The four agent envelopes get schemas of their own
 * because their `details` carry named fields that clients read.
 */

const detailItem = z
  .object({ field: z.string().optional(), message: z.string() })
  .catchall(z.unknown())
  .meta({ id: 'ErrorDetail', description: 'One problem: the field it concerns (when there is one) and what is wrong.' });

function envelope<const C extends readonly [ErrorCode, ...ErrorCode[]], D extends z.ZodType>(
  id: string,
  codes: C,
  description: string,
  details: D,
) {
  return z
    .object({
      error: z.object({
        code: z.enum(codes),
        message: z.string(),
        details: z.array(details),
      }),
    })
    .meta({ id, description });
}

/** Codes that answer with `status`, plus the few that the spec sends with another status. */
function codesFor(status: number, extra: ErrorCode[] = []): [ErrorCode, ...ErrorCode[]] {
  const codes = (Object.keys(ERROR_STATUS) as ErrorCode[]).filter((c) => ERROR_STATUS[c] === status);
  return [...codes, ...extra] as [ErrorCode, ...ErrorCode[]];
}

const agentPermissionDeniedError = envelope(
  'AgentPermissionDeniedError',
  ['agent_permission_denied'],
  "403 agent_permission_denied: the key's permissions tier does not allow the verb.",
  detailItem.extend({ tier: z.string(), verb: z.string() }),
);

const agentScopeError = envelope(
  'AgentScopeError',
  ['agent_scope_error'],
  '403 agent_scope_error: a line-scoped key reached outside its line, or a delegated key outside its subtree.',
  detailItem.extend({ line_id: z.string().nullable().meta({ description: "The key's line; null when a delegated key without one reached outside its subtree." }) }),
);

const agentCapExceededError = envelope(
  'AgentCapExceededError',
  ['agent_cap_exceeded'],
  "402 agent_cap_exceeded: the key's monthly spending cap would be exceeded.",
  detailItem.extend({ spent_cents: z.number().int(), cap_cents: z.number().int(), cycle_reset_at: z.string().meta({ format: 'date-time' }) }),
);

export const m3FraudBlockError = envelope('M3FraudBlockError', ['m3_fraud_block'], '403 m3_fraud_block: the request was blocked.', detailItem);

/**
 * 403 insufficient_scope: the admin listener's answer to an operator token whose scope does not
 * cover the route (a `verify` token on any route but verify, a `metrics` token on any but /metrics).
 * Only admin routes name it.
 */
export const insufficientScopeError = envelope(
  'InsufficientScopeError',
  ['insufficient_scope'],
  "403 insufficient_scope: the operator token is valid, but its scope (verify or metrics) does not allow this route.",
  detailItem,
);

/** 403 codes other than the named envelopes. */
const forbiddenCodes = codesFor(403).filter((c) => !['agent_permission_denied', 'agent_scope_error', 'm3_fraud_block', 'insufficient_scope'].includes(c));

/** The admin listener's backup conflicts, named by its route alone (backupConflictError). */
const BACKUP_CODES: ErrorCode[] = ['not_embedded', 'backup_in_progress'];
const conflictCodes = codesFor(409).filter((c) => !BACKUP_CODES.includes(c)) as [ErrorCode, ...ErrorCode[]];

/**
 * 409 of GET /internal/v1/backup: the server runs on Postgres (not_embedded: use pg_dump), or a
 * backup is being taken already (backup_in_progress, with Retry-After).
 */
export const backupConflictError = envelope(
  'BackupConflictError',
  ['not_embedded', 'backup_in_progress'],
  '409: not_embedded (a server on Postgres: back it up with pg_dump), or backup_in_progress (one backup at a time; retry after Retry-After seconds).',
  detailItem,
);

/** One schema per status. 400 also carries validation_error: spec §7 answers a missing rotationSecret so. */
export const errorSchemaByStatus = {
  400: envelope('BadRequestError', codesFor(400, ['validation_error']), '400: a required header is missing or repeated, or (self-rotation) the body lacks rotationSecret.', detailItem),
  401: envelope('UnauthorizedError', codesFor(401), '401: no credentials, or a key that is unknown, malformed, revoked or of the wrong tier (one message for all).', detailItem),
  402: agentCapExceededError,
  403: z.union([
    agentPermissionDeniedError,
    agentScopeError,
    m3FraudBlockError,
    envelope('ForbiddenError', forbiddenCodes as [ErrorCode, ...ErrorCode[]], '403: the credentials match but the action is not allowed.', detailItem),
  ]),
  404: envelope('NotFoundError', codesFor(404), '404: no such resource visible to this key (existence never leaks).', detailItem),
  409: envelope('ConflictError', conflictCodes, '409: the Idempotency-Key was used for a different request, or its first request is still running (Retry-After).', detailItem),
  413: envelope('PayloadTooLargeError', codesFor(413), '413: the request body is larger than the server accepts.', detailItem),
  422: envelope('ValidationError', codesFor(422), '422: a body, query or header value is invalid; details name each field.', detailItem),
  429: envelope('RateLimitedError', codesFor(429), '429: too many requests; retry after Retry-After seconds.', detailItem),
  500: envelope('InternalError', codesFor(500), '500: an unexpected error (never carries internals).', detailItem),
  503: envelope('ServiceUnavailableError', codesFor(503), '503: the database is unreachable; retry after Retry-After seconds.', detailItem),
} as const;

export type ErrorStatus = keyof typeof errorSchemaByStatus;

/** Component names of every error schema: kept in the document even where no route uses them yet. */
export const ERROR_COMPONENTS = [
  'ErrorEnvelope',
  'ErrorDetail',
  'AgentPermissionDeniedError',
  'AgentScopeError',
  'AgentCapExceededError',
  'M3FraudBlockError',
  'BadRequestError',
  'UnauthorizedError',
  'ForbiddenError',
  'NotFoundError',
  'ConflictError',
  'PayloadTooLargeError',
  'ValidationError',
  'RateLimitedError',
  'InternalError',
  'ServiceUnavailableError',
] as const;
