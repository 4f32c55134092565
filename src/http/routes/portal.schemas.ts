import { z } from 'zod';
import { displayName, errorResponses, isoTimestamp, issuedKeyObjectSchema } from './common.schemas.js';
import { insufficientScopeError } from './error.schemas.js';

const nameSchema = displayName;
const environmentSchema = z.enum(['test', 'live']);

export const idParams = z.object({ id: z.uuid() });

export const accountSchema = z.object({ id: z.uuid(), name: z.string(), created_at: isoTimestamp }).meta({ id: 'Account' });

export const serviceKeySchema = z
  .object({
    id: z.uuid(),
    account_id: z.uuid(),
    key_prefix: z.string(),
    environment: environmentSchema,
    name: z.string(),
    created_at: isoTimestamp,
    revoked_at: isoTimestamp.nullable(),
    last_used_at: isoTimestamp.nullable(),
    rotated_from: z.uuid().nullable(),
    plaintext_key: z.string().optional(),
  })
  .meta({ id: 'ServiceKey' });

export const portalKeySchema = issuedKeyObjectSchema.extend({ account_id: z.uuid() }).meta({ id: 'PortalApiKey' });

export const createAccountBody = z.object({ name: nameSchema }).strict();
export const createServiceKeyBody = z
  .object({ environment: environmentSchema.default('test'), name: nameSchema.default('service key') })
  .strict();
export const createPortalKeyBody = z
  .object({ environment: environmentSchema.default('test'), name: nameSchema.default('portal key') })
  .strict();
export const bootstrapBody = z.object({ name: nameSchema.default('bootstrap') }).strict();

/**
 * Error statuses of the admin routes. POST and DELETE may be sent a body, so they can answer 413;
 * every route but verify answers a `verify`-scoped operator token 403 insufficient_scope.
 */
export const adminErrors = { ...errorResponses([401, 404, 413, 422, 503] as const), 403: insufficientScopeError };
export const adminReadErrors = { ...errorResponses([401, 404, 422, 503] as const), 403: insufficientScopeError };
