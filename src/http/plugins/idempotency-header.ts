import type { FastifyReply, FastifyRequest } from 'fastify';
import { DomainError } from '../../domain/errors.js';
import { requestFingerprint } from '../../domain/idempotency/fingerprint.js';
import type { IdempotencyRequest, IdempotentOutcome } from '../../domain/idempotency/idempotency.service.js';

/** Spec §5: 1–255 characters, no whitespace. */
const MAX_KEY_LENGTH = 255;

/**
 * Reads the Idempotency-Key header. Node folds a repeated header into one comma-joined value, so
 * the raw header list is what tells "sent twice" apart.
 */
export function idempotencyKeyOf(request: FastifyRequest): string {
  const raw = request.raw.rawHeaders;
  let count = 0;
  let value = '';
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === 'idempotency-key') {
      count++;
      value = raw[i + 1] ?? '';
    }
  }
  if (count === 0) throw new DomainError('missing_idempotency_key');
  if (count > 1) throw new DomainError('duplicate_idempotency_key_header');
  if (value.length === 0 || value.length > MAX_KEY_LENGTH || /\s/.test(value)) {
    throw new DomainError('validation_error', 'Idempotency-Key must be 1–255 characters with no whitespace.', [
      { field: 'idempotency-key', message: 'must be 1–255 characters with no whitespace' },
    ]);
  }
  return value;
}

/**
 * A mint's or rotation's Idempotency-Key and the fingerprint of the request it came with. The path
 * is fingerprinted without its query: a route whose query changes the effect passes it as
 * `query` (only when set, so a request without it keeps the fingerprint it always had).
 */
export function idempotencyOf(request: FastifyRequest, query?: Record<string, string>): IdempotencyRequest {
  const fingerprinted = query ? { body: request.body ?? null, query } : request.body;
  return { key: idempotencyKeyOf(request), fingerprint: requestFingerprint(request.method, request.url, fingerprinted) };
}

/** Sends an idempotent answer: the first in full, a replay with its stored (secret-free) body and Idempotent-Replayed: true. */
export function sendOutcome(reply: FastifyReply, outcome: IdempotentOutcome): FastifyReply {
  if (outcome.replayed) reply.header('idempotent-replayed', 'true');
  return reply.code(outcome.status).send(outcome.body);
}
