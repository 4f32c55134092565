import type { LoggerOptions } from 'pino';

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

export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { service: 'keyplane' },
  };
}
