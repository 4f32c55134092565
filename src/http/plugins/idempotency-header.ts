import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ServicePrincipal } from '../../domain/auth/auth.service.js';
import { DomainError } from '../../domain/errors.js';
import {
  executeIdempotent,
  requestFingerprint,
  type IdempotencyOptions,
  type IdempotentOperation,
} from '../../domain/idempotency/idempotency.service.js';
import type { Db } from '../../db/database.js';

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
 * Runs a mint or rotate under its Idempotency-Key and sends the answer: the first response in full,
 * a replay with its stored (secret-free) status and body plus Idempotent-Replayed: true.
 */
export async function sendIdempotent<M>(
  request: FastifyRequest,
  reply: FastifyReply,
  db: Db,
  principal: ServicePrincipal,
  now: Date,
  op: IdempotentOperation<M>,
  opts: IdempotencyOptions = {},
): Promise<FastifyReply> {
  const key = idempotencyKeyOf(request);
  const scope = {
    accountId: principal.accountId,
    serviceKeyId: principal.id,
    key,
    fingerprint: requestFingerprint(request.method, request.url, request.body),
  };
  const outcome = await executeIdempotent(db, scope, now, op, opts);
  if (outcome.replayed) reply.header('idempotent-replayed', 'true');
  return reply.code(outcome.status).send(outcome.body);
}
