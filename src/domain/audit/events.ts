import { createHash } from 'node:crypto';
import { sql, type SQL } from 'drizzle-orm';
import type { Tx } from '../../db/database.js';
import type { Environment } from '../auth/credentials.js';
import { newId } from '../auth/credentials.js';

export const EVENT_TYPES = [
  'service_key_created',
  'service_key_revoked',
  'service_key_rotated',
  'portal_key_created',
  'portal_key_revoked',
  'agent_key_created',
  'agent_key_updated',
  'agent_key_revoked',
  'agent_key_rotated',
  'agent_key_self_rotated',
  'service_key_list_read',
  'audit_read',
  'account_created',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export type ActorKind = 'service_key' | 'api_key' | 'portal';

/** Who acted. Portal actions (internal API, CLI) have no key: kind 'portal', prefix 'portal' or 'cli'. */
export interface Actor {
  kind: ActorKind;
  keyId: string | null;
  keyPrefix: string;
}

/** Where the request came from; written on every event. */
export interface RequestMeta {
  requestId: string | null;
  ip: string | null;
  userAgent: string | null;
}

export const NO_REQUEST: RequestMeta = { requestId: null, ip: null, userAgent: null };

export interface EventInput {
  accountId: string;
  eventType: EventType;
  environment: Environment | null;
  actor: Actor;
  meta: RequestMeta;
  subjectKeyId?: string | null;
  relatedKeyId?: string | null;
  /** Event-specific facts. Never a secret: names of changed fields, counts, ids. */
  data: Record<string, unknown>;
  createdAt: Date;
}

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

/** JSON with object keys sorted at every level: the same value always encodes to the same text. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
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

export function chainHash(prevHash: string, seq: number, canonical: string): string {
  return createHash('sha256').update(`${prevHash}|${seq}|${canonical}`, 'utf8').digest('hex');
}

// Header values are attacker-controlled: keep them printable and bounded before they are stored.
const clean = (v: string | null, max: number) =>
  v === null ? null : v.replace(/[\u0000-\u001f\u007f]/g, '').slice(0, max);

function chainedFields(input: Omit<EventInput, 'data'> & { data: unknown }): ChainedFields {
  return {
    id: newId(),
    accountId: input.accountId,
    eventType: input.eventType,
    environment: input.environment,
    actorKind: input.actor.kind,
    actorKeyId: input.actor.keyId,
    actorKeyPrefix: input.actor.keyPrefix,
    subjectKeyId: input.subjectKeyId ?? null,
    relatedKeyId: input.relatedKeyId ?? null,
    requestId: clean(input.meta.requestId, 128),
    ip: clean(input.meta.ip, 64),
    userAgent: clean(input.meta.userAgent, 512),
    // Stored as jsonb and hashed later from the stored row (event-linker.ts), so no normalising here.
    data: input.data,
    createdAt: input.createdAt,
  };
}

/**
 * Transactions that recorded events, and the accounts whose events they recorded: after such a
 * transaction commits, its accounts' events must be linked and flushed before anything is answered
 * (withEvents in event-linker.ts does both). recordEvent refuses a transaction not registered here,
 * so no write path can record an event and forget its link.
 */
export const eventAccounts = new WeakMap<Tx, Set<string>>();

/**
 * Records one event inside the caller's transaction (the transaction of the change it describes),
 * in one INSERT, without its link: seq, prev_hash and hash are filled in after the commit by the
 * linker (event-linker.ts), which appends every waiting event of the account in one locked
 * statement. So recording takes no lock shared with other requests; only linking is serial, and
 * it is done in batches.
 *
 * The transaction commits asynchronously (synchronous_commit = off, set here): the linker's round
 * ends with a WAL flush that makes the change, its event and the link durable together, and
 * withEvents waits for that round before the caller answers. See db/durability.ts.
 */
export async function recordEvent(tx: Tx, input: EventInput): Promise<{ id: string }> {
  const accounts = eventAccounts.get(tx);
  if (!accounts) throw new Error('recordEvent needs a transaction opened by withEvents (its event must be linked after commit)');
  accounts.add(input.accountId);
  const f = chainedFields(input);
  await tx.execute(sql`
    insert into compliance_events
      (id, account_id, event_type, environment, actor_kind, actor_key_id, actor_key_prefix,
       subject_key_id, related_key_id, request_id, ip, user_agent, data, created_at)
    select ${f.id}, ${f.accountId}, ${f.eventType}, ${f.environment}, ${f.actorKind}, ${f.actorKeyId},
           ${f.actorKeyPrefix}, ${f.subjectKeyId}, ${f.relatedKeyId}, ${f.requestId}, ${f.ip}, ${f.userAgent},
           ${JSON.stringify(f.data)}::jsonb, ${f.createdAt.toISOString()}::timestamptz
      from (select set_config('synchronous_commit', 'off', true)) async_commit`);
  return { id: f.id };
}

/**
 * The same unlinked event as recordEvent, as a CTE `name` to put in a larger statement, for writes
 * and reads whose event commits in their own statement (a mint, the list and audit reads, whose
 * event facts such as counts are only known inside it): `data.json` is SQL producing the event's
 * JSON text, stored as jsonb; `data.from` names the CTEs it refers to (one event per row of it).
 * The caller links and flushes afterwards (linkEvents).
 *
 * The event's values are placeholders (ev_*), so that a statement holding this CTE is built once
 * at module load (db/raw.ts: preparedQuery) rather than on every request; fill them with
 * eventValues(input).
 */
export function eventInsertCte(name: string, data: { json: SQL; from: SQL }): SQL {
  const p = (field: string) => sql.placeholder(`ev_${field}`);
  return sql`${sql.raw(name)} as (
      insert into compliance_events
        (id, account_id, event_type, environment, actor_kind, actor_key_id, actor_key_prefix,
         subject_key_id, related_key_id, request_id, ip, user_agent, data, created_at)
      select ${p('id')}::uuid, ${p('account_id')}::uuid, ${p('event_type')}::text, ${p('environment')}::text,
             ${p('actor_kind')}::text, ${p('actor_key_id')}::uuid, ${p('actor_key_prefix')}::text,
             ${p('subject_key_id')}::uuid, ${p('related_key_id')}::uuid, ${p('request_id')}::text,
             ${p('ip')}::text, ${p('user_agent')}::text, (${data.json})::jsonb, ${p('created_at')}::timestamptz
        from ${data.from}
      returning id
    )`;
}

/** The values of eventInsertCte's placeholders for one event (its data comes from the statement). */
export function eventValues(input: Omit<EventInput, 'data'>): Record<string, unknown> {
  const f = chainedFields({ ...input, data: null });
  return {
    ev_id: f.id,
    ev_account_id: f.accountId,
    ev_event_type: f.eventType,
    ev_environment: f.environment,
    ev_actor_kind: f.actorKind,
    ev_actor_key_id: f.actorKeyId,
    ev_actor_key_prefix: f.actorKeyPrefix,
    ev_subject_key_id: f.subjectKeyId,
    ev_related_key_id: f.relatedKeyId,
    ev_request_id: f.requestId,
    ev_ip: f.ip,
    ev_user_agent: f.userAgent,
    ev_created_at: f.createdAt.toISOString(),
  };
}
