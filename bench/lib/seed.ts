import pg from 'pg';
import { canonicalEvent, chainHash } from './keyplane.js';

/*
 * The bench's world, built with plain SQL on the stable tables (src/db/schema.ts): bulk child keys
 * and bulk history with INSERT … SELECT generate_series. Tenants come from the server's own API
 * (bench/lib/world.ts), so their keys and events are whatever that build makes them.
 */

export interface Tenant {
  accountId: string;
  serviceKeyId: string;
  serviceKey: string;
  apiKeyId: string;
  apiKey: string;
  serviceKeyPrefix: string;
  apiKeyPrefix: string;
}

/** The seeding connection: no statement timeout (a million-row insert takes longer than 10 s). */
export async function seedClient(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, application_name: 'keyplane-bench-seed' });
  await c.connect();
  return c;
}

/**
 * n active child keys of a service key, in one statement. Token hashes are unique junk (nobody
 * authenticates with these keys); creation times are spread one millisecond apart so the list's
 * newest-first order has no ties. Returns the ids, newest first.
 */
export async function seedChildKeys(c: pg.Client, t: Tenant, n: number, label: string): Promise<string[]> {
  const { rows } = await c.query<{ id: string }>(
    `insert into api_keys (id, account_id, environment, name, permissions, cycle_anchor, key_prefix, token_hash,
                           created_at, agent_id, created_by_service_key_id, agent_label)
     select s.id, $1, 'test', $3 || ' ' || s.g, 'full', s.at, 'sk_test_' || substr(md5(s.id::text), 1, 8),
            encode(sha256(convert_to(s.id::text || $3, 'UTF8')), 'hex'), s.at, s.id, $2, 'fleet:' || (s.g % ${LABELS})
       from (select gen_random_uuid() as id, g, now() - interval '1 hour' - g * interval '1 millisecond' as at
               from generate_series(1, $4::int) g) s
     returning id`,
    [t.accountId, t.serviceKeyId, label, n],
  );
  return rows.map((r) => r.id);
}

/**
 * n compliance events appended to the tenant's account chain, in ONE INSERT … SELECT over a
 * recursive query that computes each link from the previous one exactly as recordEvent does:
 * hash = sha256(prev | seq | canonical event), the canonical text built in SQL with the same
 * sorted keys and ISO timestamps as canonicalEvent. Every 4th event is an audit_read by the
 * tenant's API key (so that key's feed is 25% of the table), the rest service_key_list_read by its
 * service key. Then the account's chain head is moved to the last link, so the account's chain
 * stays valid and live events continue it. Ids are md5-derived from (account, i): deterministic,
 * so the recursion needs no lookups (valid v4 uuids: the audit feed's schema checks the format).
 */
export async function seedEvents(c: pg.Client, t: Tenant, n: number): Promise<void> {
  await createEventFunction(c);
  await c.query('begin');
  try {
    await c.query(APPEND_EVENTS, [t.accountId, n, t.apiKeyId, t.serviceKeyId, t.apiKeyPrefix, t.serviceKeyPrefix]);
    await c.query(
      `update accounts a set chain_seq = e.seq, chain_prev = e.prev_hash, chain_head = e.hash
         from (select seq, prev_hash, hash from compliance_events where account_id = $1 order by seq desc limit 1) e
        where a.id = $1`,
      [t.accountId],
    );
    await c.query('commit');
  } catch (err) {
    await c.query('rollback');
    throw err;
  }
  await c.query('analyze compliance_events; analyze api_keys');
}

/** One event as a function of its index: the columns, and the canonical text canonicalEvent gives. */
async function createEventFunction(c: pg.Client): Promise<void> {
  await c.query(`
    create or replace function pg_temp.bench_event(acc uuid, i bigint, t0 timestamptz, ak uuid, sk uuid, akp text, skp text)
    returns table (id uuid, event_type text, actor_kind text, actor_key_id uuid, actor_key_prefix text,
                   subject_key_id uuid, data text, created_at timestamptz, canonical text)
    language sql immutable as $f$
      select e.id, e.event_type, e.actor_kind, e.actor_key_id, e.actor_key_prefix, e.subject_key_id, e.data, e.created_at,
             '{"account_id":"' || acc || '","actor_key_id":"' || e.actor_key_id
             || '","actor_key_prefix":"' || e.actor_key_prefix || '","actor_kind":"' || e.actor_kind
             || '","created_at":"' || to_char(e.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
             || '","data":' || e.data || ',"environment":"test","event_type":"' || e.event_type
             || '","id":"' || e.id || '","ip":"127.0.0.1","related_key_id":null,"request_id":"bench-' || i
             || '","subject_key_id":' || coalesce('"' || e.subject_key_id || '"', 'null')
             || ',"user_agent":"keyplane-bench"}'
        -- md5 with the version (4) and variant (8) nibbles set: a valid RFC 4122 uuid, as the wire schema requires.
        from (select overlay(overlay(md5(acc::text || ':' || i) placing '4' from 13) placing '8' from 17)::uuid as id,
                     case when i % 4 = 0 then 'audit_read' else 'service_key_list_read' end as event_type,
                     case when i % 4 = 0 then 'api_key' else 'service_key' end as actor_kind,
                     case when i % 4 = 0 then ak else sk end as actor_key_id,
                     case when i % 4 = 0 then akp else skp end as actor_key_prefix,
                     case when i % 4 = 0 then ak else null end as subject_key_id,
                     case when i % 4 = 0 then '{"count":100,"limit":100}'
                          else '{"count":50,"limit":50,"offset":0,"total":100000}' end as data,
                     t0 + i * interval '1 millisecond' as created_at) e
    $f$`);
}

/** The scale world's agent labels: fleet:0 … fleet:1999, so each names 50 of its 100,000 keys (the filtered list's page). */
export const LABELS = 2000;

/** The INSERT of seedEvents: $1 account, $2 count, $3/$4 API and service key ids, $5/$6 their prefixes. */
const APPEND_EVENTS = `with recursive
       head as (select chain_seq, chain_head,
                       date_trunc('second', now()) - interval '2 hours' - $2::int * interval '1 millisecond' as t0
                  from accounts where id = $1 for update),
       chain as (
         select 0::bigint as i, chain_seq as seq, null::text as prev, chain_head as hash, t0, null::uuid as id,
                null::text as event_type, null::text as actor_kind, null::uuid as actor_key_id,
                null::text as actor_key_prefix, null::uuid as subject_key_id, null::text as data,
                null::timestamptz as created_at
           from head
         union all
         select c.i + 1, c.seq + 1, c.hash,
                encode(sha256(convert_to(c.hash || '|' || (c.seq + 1) || '|' || e.canonical, 'UTF8')), 'hex'),
                c.t0, e.id, e.event_type, e.actor_kind, e.actor_key_id, e.actor_key_prefix, e.subject_key_id,
                e.data, e.created_at
           from chain c
           cross join lateral pg_temp.bench_event($1, c.i + 1, c.t0, $3, $4, $5, $6) e
          where c.i < $2
       ),
       linked as (
         select id, $1::uuid as account_id, seq, prev as prev_hash, hash, event_type, 'test'::text as environment,
                actor_kind, actor_key_id, actor_key_prefix, subject_key_id, null::uuid as related_key_id,
                'bench-' || i as request_id, '127.0.0.1'::text as ip, 'keyplane-bench'::text as user_agent,
                data::jsonb as data, created_at
           from chain where i > 0
       )
       -- Each event with its feed item printed, as linking prints it (migration 0006).
       insert into compliance_events (id, account_id, seq, prev_hash, hash, event_type, environment, actor_kind,
                                      actor_key_id, actor_key_prefix, subject_key_id, related_key_id, request_id,
                                      ip, user_agent, data, created_at, item_json)
       select l.*, keyplane_audit_item(row(l.*, null)::compliance_events) from linked l`;

interface EventDbRow {
  id: string;
  account_id: string;
  seq: string;
  prev_hash: string;
  hash: string;
  event_type: string;
  environment: string | null;
  actor_kind: string;
  actor_key_id: string | null;
  actor_key_prefix: string | null;
  subject_key_id: string | null;
  related_key_id: string | null;
  request_id: string | null;
  ip: string | null;
  user_agent: string | null;
  data: unknown;
  created_at: Date;
}

/**
 * Recomputes, in JS with the app's own canonicalEvent/chainHash, every link of the account's chain
 * between seq `from` and `to` (inclusive), and checks each prev_hash is the previous hash. Used on
 * the seams of the seeded history (where it starts and ends) so a format drift cannot go unnoticed.
 */
export async function verifyChainSlice(c: pg.Client, accountId: string, from: number, to: number): Promise<number> {
  const { rows } = await c.query<EventDbRow>(
    'select * from compliance_events where account_id = $1 and seq between $2 and $3 order by seq',
    [accountId, Math.max(1, from), to],
  );
  let prev: string | null = null;
  for (const r of rows) {
    if (prev !== null && r.prev_hash !== prev) throw new Error(`chain broken at seq ${r.seq}: prev_hash mismatch`);
    const canonical = canonicalEvent({
      id: r.id,
      accountId: r.account_id,
      eventType: r.event_type,
      environment: r.environment,
      actorKind: r.actor_kind,
      actorKeyId: r.actor_key_id,
      actorKeyPrefix: r.actor_key_prefix,
      subjectKeyId: r.subject_key_id,
      relatedKeyId: r.related_key_id,
      requestId: r.request_id,
      ip: r.ip,
      userAgent: r.user_agent,
      data: r.data,
      createdAt: r.created_at,
    });
    if (chainHash(r.prev_hash, Number(r.seq), canonical) !== r.hash) throw new Error(`chain broken at seq ${r.seq}: hash mismatch`);
    prev = r.hash;
  }
  return rows.length;
}
