import { createHash } from 'node:crypto';
import { canonicalJson } from '../canonical-json.js';

/** The fields of an event that its hash covers, exactly as stored. */
export interface ChainedFields {
  id: string;
  accountId: string;
  eventType: string;
  environment: string | null;
  actorKind: string;
  actorKeyId: string | null;
  actorKeyPrefix: string | null;
  subjectKeyId: string | null;
  relatedKeyId: string | null;
  requestId: string | null;
  ip: string | null;
  userAgent: string | null;
  data: unknown;
  createdAt: Date;
}

/** An event's chained fields in their wire (snake_case) form: what the hash covers and what exports show. */
export function eventWireFields(e: ChainedFields) {
  return {
    id: e.id,
    account_id: e.accountId,
    event_type: e.eventType,
    environment: e.environment,
    actor_kind: e.actorKind,
    actor_key_id: e.actorKeyId,
    actor_key_prefix: e.actorKeyPrefix,
    subject_key_id: e.subjectKeyId,
    related_key_id: e.relatedKeyId,
    request_id: e.requestId,
    ip: e.ip,
    user_agent: e.userAgent,
    data: e.data,
    created_at: e.createdAt.toISOString(),
  };
}

export function canonicalEvent(e: ChainedFields): string {
  return canonicalJson(eventWireFields(e));
}

/** One link of an account's chain: sha256(prev_hash | seq | canonical event). */
export function chainHash(prevHash: string, seq: number, canonical: string): string {
  return createHash('sha256').update(`${prevHash}|${seq}|${canonical}`, 'utf8').digest('hex');
}
