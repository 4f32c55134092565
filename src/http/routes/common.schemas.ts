import { z } from 'zod';
import { ERROR_STATUS } from '../plugins/error-status.js';
import { SECRET_PATTERN } from '../../domain/auth/secret-shapes.js';
import { errorSchemaByStatus, type ErrorStatus } from './error.schemas.js';

/** Shared wire schemas. Response schemas are whitelists: a field not named here never leaves. */

const noControl = (s: string) => !/[\u0000-\u001f\u007f-\u009f]/.test(s);
/**
 * Well-formed Unicode only: a lone surrogate ("\\ud800" in the JSON) parses into a JS string, but
 * Postgres refuses it inside the event's jsonb, which made the write a 500 (found by test/fuzz).
 * With the u flag a surrogate pair is one code point, so \p{Cs} matches only a lone surrogate.
 */
const wellFormed = (s: string) => !/\p{Cs}/u.test(s);
// Without the g flag: a global regex's test() is stateful.
const CREDENTIAL = new RegExp(SECRET_PATTERN.source);
/**
 * Names and labels are copied into compliance events, logs and responses: a key or rotation secret
 * pasted into one would be stored and shown in plaintext, so such text is refused (found by test/fuzz).
 */
export const noCredential = (s: string) => !CREDENTIAL.test(s);
export const NO_CREDENTIAL_MESSAGE = 'must not contain an API key or secret (names are recorded in the compliance log)';

/** A name a human chose: 1–128 characters, no control characters, valid Unicode, no credential. */
export const displayName = z
  .string()
  .min(1)
  .max(128)
  .refine(noControl, 'must not contain control characters or NUL')
  .refine(wellFormed, 'must be valid Unicode (no lone surrogates)')
  .refine(noCredential, NO_CREDENTIAL_MESSAGE);

export const errorCodeSchema = z.enum(Object.keys(ERROR_STATUS) as [keyof typeof ERROR_STATUS, ...(keyof typeof ERROR_STATUS)[]]);

export const errorEnvelopeSchema = z
  .object({
    error: z.object({
      code: errorCodeSchema,
      message: z.string(),
      details: z.array(z.object({ field: z.string().optional(), message: z.string() }).catchall(z.unknown())),
    }),
  })
  .meta({ id: 'ErrorEnvelope' });

/** The key object is declared once, in the domain (its schema is the OpenAPI document's `Key`). */
export { isoTimestamp, issuedKeyObjectSchema, keyObjectSchema } from '../../domain/keys/key-object.js';

/**
 * Responses for the error statuses a route can produce: each status gets its named envelope
 * (error.schemas.ts), which is what the OpenAPI document and the generated client show.
 */
export function errorResponses<const S extends readonly ErrorStatus[]>(statuses: S): { [K in S[number]]: (typeof errorSchemaByStatus)[K] } {
  return Object.fromEntries(statuses.map((s) => [s, errorSchemaByStatus[s]])) as { [K in S[number]]: (typeof errorSchemaByStatus)[K] };
}
