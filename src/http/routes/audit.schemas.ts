import { z } from 'zod';
import { AUDIT_ITEM_TYPES, type AuditItemType } from '../../domain/audit/audit.service.js';
import { errorResponses, isoTimestamp } from './common.schemas.js';

const ALLOWED = AUDIT_ITEM_TYPES.join(', ');

/**
 * event_types: a comma list (also accepted as a repeated parameter). An empty value means no
 * filter. Any other value is 422 naming the allowed set.
 */
const eventTypes = z
  .union([z.string(), z.array(z.string())])
  .optional()
  .transform((v, ctx): AuditItemType[] | null => {
    if (v === undefined) return null;
    const parts = (Array.isArray(v) ? v.join(',') : v)
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    if (parts.length === 0) return null;
    const bad = parts.filter((p) => !(AUDIT_ITEM_TYPES as readonly string[]).includes(p));
    if (bad.length > 0) {
      ctx.addIssue({ code: 'custom', message: `event_types must be a comma-separated list of: ${ALLOWED} (got ${bad.join(', ')})` });
      return z.NEVER;
    }
    return [...new Set(parts)] as AuditItemType[];
  });

/**
 * A compliance_event item's data: every field its hash covers (the event's own facts under
 * `details`) and its link, so an agent can recompute the links of its slice. seq, prev_hash and
 * hash are null only while the event waits for its link (milliseconds; see domain/audit/linker.ts).
 */
const complianceEventData = z
  .object({
    event_type: z.string(),
    account_id: z.uuid(),
    environment: z.string().nullable(),
    actor_kind: z.string(),
    actor_key_id: z.uuid().nullable(),
    actor_key_prefix: z.string().nullable(),
    subject_key_id: z.uuid().nullable(),
    related_key_id: z.uuid().nullable(),
    request_id: z.string().nullable(),
    ip: z.string().nullable(),
    user_agent: z.string().nullable(),
    details: z.record(z.string(), z.unknown()),
    seq: z.number().int().nullable(),
    prev_hash: z.string().nullable(),
    hash: z.string().nullable(),
  })
  .meta({ id: 'ComplianceEventData' });

/** GET /v1/audit (spec §6) plus the `before` cursor extension. */
export const auditQuery = z
  .object({
    api_key_id: z.string().max(64).default('self'),
    limit: z.coerce.number().int().min(1).max(500).default(100),
    event_types: eventTypes,
    before: z.string().max(64).optional(),
  })
  .strict();

const auditItem = z
  .object({
    type: z.enum(AUDIT_ITEM_TYPES),
    id: z.uuid(),
    created_at: isoTimestamp,
    createdAt: isoTimestamp,
    data: complianceEventData,
  })
  .meta({ id: 'AuditEvent' });

export const auditResponse = {
  200: z.object({
    events: z.array(auditItem),
    limit: z.number().int(),
    api_key_id: z.uuid(),
    /** Extension: pass as `before` for the next (older) page; null on the last page. */
    next_before: z.uuid().nullable(),
  }),
  ...errorResponses([401, 403, 404, 422, 429, 503] as const),
};
