import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

// A caller's own x-request-id is honoured when it is short and printable; otherwise we make one.
const WELL_FORMED = /^[A-Za-z0-9._:\-]{1,128}$/;

export function genRequestId(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && WELL_FORMED.test(given) ? given : randomUUID();
}
