import { createHash } from 'node:crypto';
import { canonicalJson } from '../canonical-json.js';

/** A request's identity: method, path (without the /api alias prefix) and canonical JSON body. */
export function requestFingerprint(method: string, path: string, body: unknown): string {
  const normalizedPath = path.split('?')[0]!.replace(/^\/api(?=\/v1\/)/, '');
  return createHash('sha256')
    .update(`${method.toUpperCase()} ${normalizedPath} ${canonicalJson(body ?? null)}`)
    .digest('hex');
}

/** Secrets are never stored: a replay returns the first answer without them. */
const SECRET_FIELDS = new Set(['plaintext_key', 'rotation_secret', 'rotationSecret', 'apiKey']);

export function redactSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactSecrets);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value as Record<string, unknown>)
      .filter(([k]) => !SECRET_FIELDS.has(k))
      .map(([k, v]) => [k, redactSecrets(v)]),
  );
}
