import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { SECRET_PATTERN } from '../../domain/auth/secret-shapes.js';
import { DomainError, defaultMessage, type ErrorCode, type ErrorDetail } from '../../domain/errors.js';
import { statusOf } from './error-status.js';

/** The error envelope of spec §10. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; details: ErrorDetail[] };
}

/** Sends the envelope, and notes its code for the completion log line and the metrics (request-log.ts). */
export function answer(reply: FastifyReply, status: number, body: ErrorBody): FastifyReply {
  reply.request.errorCode = body.error.code;
  return reply.code(status).send(body);
}

export function errorBody(code: ErrorCode, message?: string, details: ErrorDetail[] = []): ErrorBody {
  return { error: { code, message: message ?? defaultMessage(code), details } };
}

/** How long a client should wait when the database is down before retrying. */
export const UNAVAILABLE_RETRY_AFTER_S = 2;

/** Longest echo of client input in a validation message (zod names unknown fields in its message). */
const MAX_DETAIL_CHARS = 200;

/**
 * Validation messages can quote what the client sent (unknown field names, path segments). Cap
 * them, and never send back anything shaped like a credential, even the client's own: it would end
 * up in the client's logs and error trackers.
 */
function scrubbed(text: string): string {
  const short = text.length > MAX_DETAIL_CHARS ? `${text.slice(0, MAX_DETAIL_CHARS)}…` : text;
  return short.replace(SECRET_PATTERN, '[redacted]');
}

function fromZod(err: { validation: { instancePath?: string; message?: string; params?: unknown }[]; validationContext?: string }): ErrorDetail[] {
  return err.validation.map((v) => {
    const path = (v.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.');
    const field = scrubbed([err.validationContext === 'body' ? '' : err.validationContext, path].filter(Boolean).join('.'));
    const message = scrubbed(v.message ?? 'invalid');
    return field ? { field, message } : { message };
  });
}

/**
 * Errors Fastify raises while routing, before any hook or error handler runs (passed to the
 * `frameworkErrors` option): a malformed percent-encoding in the path (FST_ERR_BAD_URL), a path
 * parameter over maxParamLength (FST_ERR_MAX_PARAM_LENGTH, else a bare 414) or a failed constraint.
 * None of them can name a resource, so each is the envelope's 404, like any unknown path; without
 * this they answered Fastify's own non-envelope 400/414 (found by test/fuzz).
 */
export function frameworkErrorHandler(_err: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  void answer(reply, 404, errorBody('not_found'));
}

/** Node's abort of a request body (the client left, or clientErrorHandler closed a timed-out socket). */
function isClientAbort(err: Error, request: FastifyRequest): boolean {
  const e = err as { code?: string; message?: string };
  return request.raw.readableAborted || (e.code === 'ECONNRESET' && e.message === 'aborted');
}

/**
 * Any other 4xx a plugin or Fastify raises (a static path refused, a request the not-found route
 * could not read): the client's fault, so the envelope and an info line, never a 500 with a stack.
 * Nothing exists where the router found no route or a static path was refused: 404 not_found.
 */
function clientFault(fe: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const status = fe.statusCode ?? 400;
  const code: ErrorCode = request.is404 || [403, 404, 405].includes(status) ? 'not_found' : status === 408 ? 'request_timeout' : status === 431 ? 'headers_too_large' : 'bad_request';
  request.log.info({ err: { code: fe.code, statusCode: status } }, 'client error');
  return answer(reply, statusOf(code), errorBody(code));
}

/** How the error handler tells a database outage from a bug (given by app.ts from db/errors.ts). */
export interface OutageRules {
  /** Whether the error means the database is not reachable right now (answered 503). */
  isUnavailable(err: unknown): boolean;
  /** What of the error may be logged: the driver's own code and message, never the SQL or its values. */
  describe(err: unknown): { code?: string; message?: string };
  /** Counts a request that failed on the database (the metrics): unreachable, or another driver error. */
  onDatabaseError?: (kind: 'unavailable' | 'other') => void;
}

/** Maps every error, ours and Fastify's, to the envelope. Unknown errors are a generic 500. */
export function registerErrorHandling(app: FastifyInstance, outages: OutageRules): void {
  app.setErrorHandler((err: FastifyError | DomainError | Error, request: FastifyRequest, reply: FastifyReply) => {
    if (err instanceof DomainError) {
      if (err.hints.retryAfterSeconds !== undefined) reply.header('retry-after', String(err.hints.retryAfterSeconds));
      return answer(reply, statusOf(err.code), errorBody(err.code, err.message, err.details));
    }
    if (hasZodFastifySchemaValidationErrors(err)) {
      const where = (err as { validationContext?: string }).validationContext ?? 'request';
      return answer(reply, 422, errorBody('validation_error', `Invalid ${where}.`, fromZod(err as never)));
    }
    const fe = err as FastifyError;
    switch (fe.code) {
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return answer(reply, 422, errorBody('validation_error', 'The body is not valid JSON.', [{ field: 'body', message: 'invalid JSON' }]));
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      case 'FST_ERR_CTP_INVALID_TYPE':
        return answer(reply, 422, errorBody('validation_error', 'Send the body as JSON with Content-Type: application/json.', [{ field: 'content-type', message: 'must be application/json' }]));
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return answer(reply, 413, errorBody('payload_too_large'));
      case 'FST_ERR_BAD_URL':
      case 'FST_ERR_ASYNC_CONSTRAINT':
        return answer(reply, 404, errorBody('not_found'));
    }
    if (fe.statusCode === 413) return answer(reply, 413, errorBody('payload_too_large'));
    if (fe.statusCode === 415 || (fe.code === 'FST_ERR_ROUTE_MISSING_CONTENT_TYPE' && !request.is404)) {
      return answer(reply, 422, errorBody('validation_error', 'Send the body as JSON with Content-Type: application/json.', [{ field: 'content-type', message: 'must be application/json' }]));
    }
    if (fe.statusCode === 400 && fe.code?.startsWith('FST_ERR_CTP')) return answer(reply, 422, errorBody('validation_error', 'The body could not be read.'));
    // Before the outage check: the body stream's abort error carries ECONNRESET, like a dropped database.
    if (isClientAbort(err, request)) {
      // Nobody is left to read an answer: log it, answer nothing, drop what remains of the socket.
      request.log.info('the client closed the connection before its request was complete');
      reply.hijack();
      request.raw.socket?.destroy();
      return;
    }
    if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) return clientFault(fe, request, reply);
    if (outages.isUnavailable(err)) {
      // The driver's own error, not drizzle's wrapper, whose message carries the SQL and its parameters.
      request.log.warn({ err: outages.describe(err) }, 'database unavailable');
      outages.onDatabaseError?.('unavailable');
      reply.header('retry-after', String(UNAVAILABLE_RETRY_AFTER_S));
      return answer(reply, 503, errorBody('service_unavailable'));
    }
    if (typeof outages.describe(err).code === 'string') outages.onDatabaseError?.('other');
    request.log.error({ err }, 'unhandled error');
    return answer(reply, 500, errorBody('internal_error'));
  });

  app.setNotFoundHandler((_request, reply) => answer(reply, 404, errorBody('not_found')));
}
