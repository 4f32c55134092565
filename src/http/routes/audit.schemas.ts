import { z } from 'zod';
import { AUDIT_ITEM_TYPES, type AuditItemType } from '../../domain/audit/audit.service.js';
import { EVENT_TYPES } from '../../domain/audit/events.js';
import { errorResponses, isoTimestamp } from './common.schemas.js';

/** The values of a comma list (also accepted as a repeated parameter); empty parts are dropped. */
const commaList = (v: string | string[]) =>
  (Array.isArray(v) ? v.join(',') : v)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/**
 * A comma list of names from `allowed`: an empty value means no filter (null); any other value is
 * 422 naming the allowed set.
 */
function namesFrom<const T extends string>(param: string, allowed: readonly T[]) {
  return z
    .union([z.string(), z.array(z.string())])
    .optional()
    .transform((v, ctx): T[] | null => {
      if (v === undefined) return null;
      const parts = commaList(v);
      if (parts.length === 0) return null;
      const bad = parts.filter((p) => !(allowed as readonly string[]).includes(p));
      if (bad.length > 0) {
        ctx.addIssue({ code: 'custom', message: `${param} must be a comma-separated list of: ${allowed.join(', ')} (got ${bad.join(', ')})` });
        return z.NEVER;
      }
      return [...new Set(parts)] as T[];
    });
}

/** event_types: which item types (spec §6). */
const eventTypes = namesFrom<AuditItemType>('event_types', AUDIT_ITEM_TYPES);
/**
 * exclude (extension): compliance event types to leave out, such as a polling agent's own
 * audit_read. The domain checks the names (audit.service.ts), so that its 422 can list the whole
 * allowed set in a detail field: a validation message is cut at 200 characters.
 */
const exclude = z
  .union([z.string().max(2000), z.array(z.string().max(2000))])
  .optional()
  .transform((v) => {
    const parts = v === undefined ? [] : commaList(v);
    return parts.length === 0 ? null : [...new Set(parts)];
  })
  .meta({ description: `A comma list of compliance event types: ${EVENT_TYPES.join(', ')}.` });

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
    exclude,
  })
  .strict();

const complianceItem = z
  .object({
    type: z.literal('compliance_event'),
    id: z.uuid(),
    created_at: isoTimestamp,
    createdAt: isoTimestamp,
    data: complianceEventData,
  })
  .meta({ id: 'AuditEvent' });

/**
 * A debit of the spend ledger as Saperly's feed carries it (its MCP server formats
 * transaction_type and amount_cents): amount_cents is negative, money spent. spent_after_cents is
 * the agent's spend in the cycle after it, cap_cents the cap it was held to (null: no cap, or a
 * debit recorded before these were kept).
 */
const billingItem = z
  .object({
    type: z.literal('billing_transaction'),
    id: z.uuid(),
    created_at: isoTimestamp,
    createdAt: isoTimestamp,
    data: z
      .object({
        transaction_type: z.literal('usage_debit'),
        amount_cents: z.number().int(),
        request_id: z.string(),
        api_key_id: z.uuid(),
        spent_after_cents: z.number().int().nullable(),
        cap_cents: z.number().int().nullable(),
      })
      .meta({ id: 'BillingTransactionData' }),
  })
  .meta({ id: 'BillingTransactionItem' });

const auditItem = z.discriminatedUnion('type', [complianceItem, billingItem]).meta({ id: 'AuditItem' });

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
