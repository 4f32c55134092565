import { isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';
import type { LoggerOptions } from 'pino';
import { scrubSecrets } from '../../domain/auth/secret-shapes.js';

/**
 * Logs carry no secrets: the authorization header, any plaintext key, rotation secret or request
 * body is censored wherever it appears. Fastify's request serializer logs no headers or bodies in
 * the first place; this is the second line of defence for anything a handler might log.
 */
const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["idempotency-key"]',
  'headers.authorization',
  'authorization',
  'body',
  'req.body',
  '*.body',
  'plaintext_key',
  '*.plaintext_key',
  '*.*.plaintext_key',
  'rotation_secret',
  '*.rotation_secret',
  '*.*.rotation_secret',
  'rotationSecret',
  '*.rotationSecret',
  'apiKey',
  '*.apiKey',
  'service_key',
  '*.service_key',
  'api_key',
  '*.api_key',
  'token',
  '*.token',
  'key',
  '*.key',
  'adminToken',
  '*.adminToken',
];

/** What Fastify's "incoming request" line and error logs record of a request (Fastify's own fields). */
interface LoggedRequest extends Pick<IncomingMessage, 'method' | 'url' | 'socket'> {
  host?: string;
  ip?: string;
}

/**
 * Fastify's request serializer (an instance's serializers take precedence over Fastify's defaults),
 * with a client address that is an address. A key a client put in the URL is scrubbed with the rest
 * of the line as it is written (streamWrite below), not twice.
 */
function serializeRequest(req: LoggedRequest) {
  return {
    method: req.method,
    url: req.url,
    host: req.host,
    // With TRUST_PROXY, req.ip comes from X-Forwarded-For, where a client can write anything.
    remoteAddress: req.ip !== undefined && isIP(req.ip) !== 0 ? req.ip : req.socket?.remoteAddress,
    remotePort: req.socket?.remotePort,
  };
}

/** json: one JSON object per line (production); pretty: coloured, human-readable lines for development. */
export type LogFormat = 'json' | 'pretty';

/**
 * `knownSecrets` are literal secrets of this process (the operator token) scrubbed wherever they
 * appear. Every line is also scrubbed as written (streamWrite), whatever logged it: a message that
 * quotes a URL (Fastify's "Route … not found"), an error, a handler's own fields. On a line without
 * a marker of a secret shape that is a few substring scans.
 */
export function loggerOptions(level: string, knownSecrets: readonly string[] = [], format: LogFormat = 'json'): LoggerOptions {
  // A literal is looked for as it appears in the JSON line too (a quote or backslash is escaped there).
  const literals = knownSecrets.filter(Boolean).flatMap((s) => [...new Set([s, JSON.stringify(s).slice(1, -1)])]);
  return {
    level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { service: 'keyplane' },
    serializers: { req: serializeRequest },
    hooks: { streamWrite: (line) => scrubSecrets(line, literals) },
    // `"level":"info"` rather than 30: what log pipelines and people read without a lookup table.
    // pino-pretty is given numbers, which it colours by level.
    ...(format === 'json' ? { formatters: { level: (label: string) => ({ level: label }) } } : {}),
  };
}
