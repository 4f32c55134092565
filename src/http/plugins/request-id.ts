import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isSecretShaped } from '../../domain/auth/secret-shapes.js';

// A caller's own x-request-id is honoured when it is short and printable; otherwise we make one.
const WELL_FORMED = /^[A-Za-z0-9._:\-]{1,128}$/;

/**
 * The request id is logged, echoed in x-request-id and stored in the compliance log, where the
 * account's other keys read it: a caller that puts a key or secret there gets a generated id instead.
 */
export function genRequestId(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && WELL_FORMED.test(given) && !isSecretShaped(given) ? given : randomUUID();
}
