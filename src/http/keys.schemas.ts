import { z } from 'zod';
import { errorResponses, keyObjectSchema } from './common.schemas.js';

/** GET /v1/keys: limit 1–100 (default 50), offset 0–100000 (default 0), spec §4. */
export const listKeysQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(100).default(50),
    offset: z.coerce.number().int().min(0).max(100_000).default(0),
  })
  .strict();

export const listKeysResponse = {
  200: z.object({ keys: z.array(keyObjectSchema), total: z.number().int() }),
  ...errorResponses([401, 422, 429, 503] as const),
};
