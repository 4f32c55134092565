import { createHash } from 'node:crypto';
import { sql, type SQL } from 'drizzle-orm';
import type { Tx } from '../db/client.js';
import { queryRows } from '../db/raw.js';
import type { Environment } from './credentials.js';
import { newId } from './credentials.js';

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
    // Round-trip through JSON so what is hashed is exactly what jsonb will hand back.
    data: JSON.parse(JSON.stringify(input.data)),
    createdAt: input.createdAt,
  };
}

/**
 * Appends one event to its account's hash chain, inside the caller's transaction, in one statement:
 * the UPDATE of the account's chain head takes the row lock that orders concurrent writers (so the
 * sequence is gap-free), computes the new link from the old head, and the INSERT stores it.
 * Returns the event id, its sequence number and hash.
 */
export async function recordEvent(tx: Tx, input: EventInput): Promise<{ id: string; seq: number; hash: string }> {
  const fields = chainedFields(input);
  const canonical = canonicalEvent(fields);
  const rows = await queryRows<{ seq: string; hash: string }>(tx, sql`
    with head as (
      update accounts
         set chain_seq = chain_seq + 1,
             chain_prev = chain_head,
             chain_head = encode(sha256(convert_to(chain_head || '|' || (chain_seq + 1)::text || '|' || ${canonical}::text, 'UTF8')), 'hex')
       where id = ${fields.accountId}
       returning chain_seq, chain_prev, chain_head
    )
    insert into compliance_events
      (id, account_id, seq, prev_hash, hash, event_type, environment, actor_kind, actor_key_id,
       actor_key_prefix, subject_key_id, related_key_id, request_id, ip, user_agent, data, created_at)
    select ${fields.id}, ${fields.accountId}, head.chain_seq, head.chain_prev, head.chain_head,
           ${fields.eventType}, ${fields.environment}, ${fields.actorKind}, ${fields.actorKeyId},
           ${fields.actorKeyPrefix}, ${fields.subjectKeyId}, ${fields.relatedKeyId}, ${fields.requestId},
           ${fields.ip}, ${fields.userAgent}, ${JSON.stringify(fields.data)}::jsonb, ${fields.createdAt.toISOString()}::timestamptz
      from head
    returning seq, hash`);
  const row = rows[0];
  if (!row) throw new Error(`account ${fields.accountId} does not exist; event not recorded`);
  return { id: fields.id, seq: Number(row.seq), hash: row.hash };
}

/** Stands for the event's `data` while its canonical text is built; JSON-escaped, so no header value can forge it. */
const DATA_SENTINEL = '\u0000keyplane-data\u0000';

/**
 * The same chained event as recordEvent, as two CTEs (`<name>_head`, `<name>`) to put in a larger
 * statement, for reads whose event facts (counts) are only known inside that statement: `data` is
 * given as SQL producing its canonical JSON text (keys sorted, as canonicalJson writes them), which
 * is also what is stored as jsonb. Postgres then builds the canonical event around the text and hashes it, so the read, its
 * event and the chain link commit together in one round trip, and the account row (which orders
 * the chain) is locked only for the statement itself. `from` names the CTEs the data refers to.
 */
export function chainedEventCtes(
  name: string,
  input: Omit<EventInput, 'data'>,
  data: { canonicalText: SQL; from: SQL },
): SQL {
  const fields = chainedFields({ ...input, data: DATA_SENTINEL });
  const parts = canonicalEvent(fields).split(JSON.stringify(DATA_SENTINEL));
  if (parts.length !== 2) throw new Error('event sentinel must occur exactly once');
  const [before, after] = parts as [string, string];
  const canonical = sql`(${before}::text || ${data.canonicalText} || ${after}::text)`;
  const head = sql.raw(`${name}_head`);
  return sql`${head} as (
      update accounts
         set chain_seq = chain_seq + 1,
             chain_prev = chain_head,
             chain_head = encode(sha256(convert_to(chain_head || '|' || (chain_seq + 1)::text || '|' || ${canonical}, 'UTF8')), 'hex')
        from ${data.from}
       where accounts.id = ${fields.accountId}
       returning chain_seq, chain_prev, chain_head
    ),
    ${sql.raw(name)} as (
      insert into compliance_events
        (id, account_id, seq, prev_hash, hash, event_type, environment, actor_kind, actor_key_id,
         actor_key_prefix, subject_key_id, related_key_id, request_id, ip, user_agent, data, created_at)
      select ${fields.id}, ${fields.accountId}, ${head}.chain_seq, ${head}.chain_prev, ${head}.chain_head,
             ${fields.eventType}, ${fields.environment}, ${fields.actorKind}, ${fields.actorKeyId},
             ${fields.actorKeyPrefix}, ${fields.subjectKeyId}, ${fields.relatedKeyId}, ${fields.requestId},
             ${fields.ip}, ${fields.userAgent}, (${data.canonicalText})::jsonb, ${fields.createdAt.toISOString()}::timestamptz
        from ${head}, ${data.from}
      returning seq
    )`;
}
