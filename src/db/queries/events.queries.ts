import { and, asc, eq, isNull, sql, type SQL } from 'drizzle-orm';
import { queryRows } from '../statements.js';
import { complianceEvents, eventColumns, type ComplianceEventRow } from '../schema.js';
import type { Db, Tx } from '../types.js';

/** The columns of a new, unlinked event (its link is written later, once, by the linker). */
export type NewEventRow = Omit<typeof complianceEvents.$inferInsert, 'seq' | 'prevHash' | 'hash' | 'itemJson'>;

/**
 * Inserts one unlinked event in the caller's transaction, and makes that transaction commit
 * asynchronously: the linker's round ends with the WAL flush that makes the change, its event and
 * the link durable together (db/durability.ts).
 */
export async function insertEvent(tx: Tx, e: NewEventRow): Promise<void> {
  await tx.execute(sql`
    insert into compliance_events
      (id, account_id, event_type, environment, actor_kind, actor_key_id, actor_key_prefix,
       subject_key_id, related_key_id, request_id, ip, user_agent, data, created_at)
    select ${e.id}, ${e.accountId}, ${e.eventType}, ${e.environment ?? null}, ${e.actorKind}, ${e.actorKeyId ?? null},
           ${e.actorKeyPrefix ?? null}, ${e.subjectKeyId ?? null}, ${e.relatedKeyId ?? null}, ${e.requestId ?? null},
           ${e.ip ?? null}, ${e.userAgent ?? null}, ${JSON.stringify(e.data)}::jsonb, ${e.createdAt.toISOString()}::timestamptz
      from (select set_config('synchronous_commit', 'off', true)) async_commit`);
}

/**
 * Inserts many unlinked events in one statement (as insertEvent does one): for a change that
 * records an event per row it touched, such as the revocation of a service key's whole fleet.
 */
export async function insertEvents(tx: Tx, events: NewEventRow[]): Promise<void> {
  if (events.length === 0) return;
  const rows = events.map((e) => ({
    id: e.id,
    account_id: e.accountId,
    event_type: e.eventType,
    environment: e.environment ?? null,
    actor_kind: e.actorKind,
    actor_key_id: e.actorKeyId ?? null,
    actor_key_prefix: e.actorKeyPrefix ?? null,
    subject_key_id: e.subjectKeyId ?? null,
    related_key_id: e.relatedKeyId ?? null,
    request_id: e.requestId ?? null,
    ip: e.ip ?? null,
    user_agent: e.userAgent ?? null,
    data: e.data,
    created_at: e.createdAt.toISOString(),
  }));
  await tx.execute(sql`
    insert into compliance_events
      (id, account_id, event_type, environment, actor_kind, actor_key_id, actor_key_prefix,
       subject_key_id, related_key_id, request_id, ip, user_agent, data, created_at)
    select r.id, r.account_id, r.event_type, r.environment, r.actor_kind, r.actor_key_id, r.actor_key_prefix,
           r.subject_key_id, r.related_key_id, r.request_id, r.ip, r.user_agent, r.data, r.created_at
      from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as r(
             id uuid, account_id uuid, event_type text, environment text, actor_kind text, actor_key_id uuid,
             actor_key_prefix text, subject_key_id uuid, related_key_id uuid, request_id text, ip text,
             user_agent text, data jsonb, created_at timestamptz),
           (select set_config('synchronous_commit', 'off', true)) async_commit`);
}

/**
 * Locks an account's chain head for a linking round (and makes the round commit asynchronously).
 * FOR NO KEY UPDATE: it serialises linkers, and unlike FOR UPDATE it does not conflict with the
 * FOR KEY SHARE that every insert referencing the account takes through its foreign key, so mints
 * do not queue behind a linking round.
 */
export async function lockChainHead(tx: Tx, accountId: string): Promise<{ seq: number; head: string } | undefined> {
  const [row] = await queryRows<{ chain_seq: string | number; chain_head: string }>(
    tx,
    sql`select chain_seq, chain_head, set_config('synchronous_commit', 'off', true) as async_commit
          from accounts where id = ${accountId} for no key update`,
  );
  return row && { seq: Number(row.chain_seq), head: row.chain_head };
}

/** An account's events still waiting for their link, oldest first. */
export function waitingEvents(tx: Tx, accountId: string, limit: number): Promise<ComplianceEventRow[]> {
  return tx
    .select(eventColumns)
    .from(complianceEvents)
    .where(and(eq(complianceEvents.accountId, accountId), isNull(complianceEvents.seq)))
    .orderBy(asc(complianceEvents.createdAt), asc(complianceEvents.id))
    .limit(limit);
}

export interface EventLink {
  id: string;
  seq: number;
  prev_hash: string;
  hash: string;
}

/**
 * Writes the links of waiting events and the account's new chain head in one statement. Returns
 * false (and writes nothing the caller may keep) unless every link was written.
 */
export async function writeLinks(tx: Tx, accountId: string, links: EventLink[]): Promise<boolean> {
  const last = links[links.length - 1]!;
  const updated = await queryRows<{ id: string }>(
    tx,
    sql`with links as (
          select * from jsonb_to_recordset(${JSON.stringify(links)}::jsonb) as l(id uuid, seq bigint, prev_hash text, hash text)
        ),
        linked as (
          update compliance_events e
             set seq = l.seq, prev_hash = l.prev_hash, hash = l.hash
            from links l
           where e.id = l.id and e.account_id = ${accountId} and e.seq is null
          returning e.id
        )
        update accounts
           set chain_seq = ${last.seq}, chain_prev = ${last.prev_hash}, chain_head = ${last.hash}
         where id = ${accountId} and (select count(*) from linked) = ${links.length}
        returning id`,
  );
  return updated.length === 1;
}

/** Accounts with events waiting for their link (left by a crash or a failed round). */
export async function accountsWithWaitingEvents(db: Db): Promise<string[]> {
  const rows = await queryRows<{ account_id: string }>(db, sql`select distinct account_id from compliance_events where seq is null`);
  return rows.map((r) => r.account_id);
}

export async function countWaitingEvents(db: Db, accountId?: string): Promise<number> {
  const rows = await queryRows<{ n: string | number }>(
    db,
    accountId
      ? sql`select count(*) as n from compliance_events where seq is null and account_id = ${accountId}`
      : sql`select count(*) as n from compliance_events where seq is null`,
  );
  return Number(rows[0]?.n ?? 0);
}

/**
 * The same unlinked event as insertEvent, as a CTE `name` to put in a larger statement, for reads
 * whose event commits in their own statement (the list and audit reads, whose event facts such as
 * counts are only known inside it): `data.json` is SQL producing the event's JSON text, stored as
 * jsonb; `data.from` names the CTEs it refers to (one event per row of it). The event's values are
 * placeholders (ev_*), so that a statement holding this CTE is built once (statements.ts:
 * preparedQuery); fill them with eventPlaceholders.
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

/** The values of eventInsertCte's placeholders for one event. */
export function eventPlaceholders(e: Omit<NewEventRow, 'data'>): Record<string, unknown> {
  return {
    ev_id: e.id,
    ev_account_id: e.accountId,
    ev_event_type: e.eventType,
    ev_environment: e.environment ?? null,
    ev_actor_kind: e.actorKind,
    ev_actor_key_id: e.actorKeyId ?? null,
    ev_actor_key_prefix: e.actorKeyPrefix ?? null,
    ev_subject_key_id: e.subjectKeyId ?? null,
    ev_related_key_id: e.relatedKeyId ?? null,
    ev_request_id: e.requestId ?? null,
    ev_ip: e.ip ?? null,
    ev_user_agent: e.userAgent ?? null,
    ev_created_at: e.createdAt.toISOString(),
  };
}
