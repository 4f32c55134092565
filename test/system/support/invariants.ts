import pg from 'pg';
import { openDatabase } from '../../../src/db/database.js';
import { verifyChains } from '../../../src/domain/audit/chain.service.js';

/*
 * The invariants that must hold after any crash, outage or load (issue 8, point 1), checked straight
 * in the database. Each returns a list of violations (empty = holds), so a failure names them all.
 */

export interface InvariantReport {
  keys: number;
  rotations: number;
  events: number;
  violations: string[];
}

async function rows<T>(c: pg.Client, text: string): Promise<T[]> {
  return (await c.query(text)).rows as T[];
}

export async function checkInvariants(databaseUrl: string): Promise<InvariantReport> {
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  const violations: string[] = [];
  const bad = (what: string, list: unknown[]) => {
    if (list.length) violations.push(`${what}: ${list.length} (e.g. ${JSON.stringify(list.slice(0, 3))})`);
  };
  try {
    // A successor's predecessor exists, is revoked, and belongs to the same rotation chain.
    bad(
      'successor whose predecessor is missing, active or of another chain',
      await rows(
        c,
        `select s.id from api_keys s left join api_keys p on p.id = s.rotated_from
          where s.rotated_from is not null and (p.id is null or p.revoked_at is null or p.agent_id <> s.agent_id)`,
      ),
    );
    // Every rotated key has exactly one successor.
    bad(
      'key with more than one successor',
      await rows(c, `select rotated_from from api_keys where rotated_from is not null group by rotated_from having count(*) > 1`),
    );
    // A revoked child key was revoked either by DELETE (its event) or by a rotation (its successor), never
    // neither (a half-done rotation) and never both.
    bad(
      'revoked key with neither a revoke event nor a successor, or with both',
      await rows(
        c,
        `select k.id from api_keys k
          where k.revoked_at is not null and k.created_by_service_key_id is not null
            and (exists (select 1 from compliance_events e where e.subject_key_id = k.id
                          and ((e.event_type = 'agent_key_revoked' and e.data->>'reason' is distinct from 'overlap_ended')
                               or (e.event_type = 'agent_key_reuse_detected' and e.data->>'revoked' = 'true'))))
              = (exists (select 1 from api_keys s where s.rotated_from = k.id))`,
      ),
    );
    // At most one active key per rotation chain.
    bad(
      'rotation chain with more than one active key',
      await rows(c, `select agent_id from api_keys where revoked_at is null group by agent_id having count(*) > 1`),
    );
    // Overlaps (issue 29): at most two keys of a chain work (the live key and one overlapping
    // predecessor), and an overlapping key always has its chain's live key beside it.
    bad(
      'rotation chain with more than two working keys',
      await rows(c, `select agent_id from api_keys where revoked_at is null or revoked_at > now() group by agent_id having count(*) > 2`),
    );
    bad(
      'overlapping key without a live key in its chain',
      await rows(
        c,
        `select k.id from api_keys k where k.revoked_at > now()
            and not exists (select 1 from api_keys l where l.agent_id = k.agent_id and l.revoked_at is null)`,
      ),
    );
    // Every effect has exactly one compliance event: one created event per first key of a chain, one
    // rotated event per successor (naming it), and no event for a key that does not exist.
    bad(
      'minted child key without exactly one agent_key_created event',
      await rows(
        c,
        `select k.id from api_keys k
          where k.rotated_from is null and k.created_by_service_key_id is not null and cardinality(k.delegation_path) = 0
            and (select count(*) from compliance_events e where e.subject_key_id = k.id and e.event_type = 'agent_key_created') <> 1`,
      ),
    );
    bad(
      'delegated key without exactly one agent_key_delegated event',
      await rows(
        c,
        `select k.id from api_keys k
          where k.rotated_from is null and cardinality(k.delegation_path) > 0
            and (select count(*) from compliance_events e where e.subject_key_id = k.id and e.event_type = 'agent_key_delegated') <> 1`,
      ),
    );
    await spendInvariants(c, bad);
    bad(
      'successor without exactly one rotation event',
      await rows(
        c,
        `select s.id from api_keys s where s.rotated_from is not null
            and (select count(*) from compliance_events e
                  where e.related_key_id = s.id and e.subject_key_id = s.rotated_from
                    and e.event_type in ('agent_key_rotated', 'agent_key_self_rotated', 'agent_key_self_rotation_replaced')) <> 1`,
      ),
    );
    bad(
      'rotation event naming a successor that does not exist',
      await rows(
        c,
        `select e.id from compliance_events e
          where e.event_type in ('agent_key_rotated', 'agent_key_self_rotated', 'agent_key_self_rotation_replaced')
            and not exists (select 1 from api_keys s where s.id = e.related_key_id and s.rotated_from = e.subject_key_id)`,
      ),
    );
    // A completed idempotency record points at a key that exists (its effect committed with it).
    bad(
      'completed idempotency record whose key is missing',
      await rows(
        c,
        `select i.id from idempotency_keys i
          where i.completed_at is not null and i.response_status = 201
            and not exists (select 1 from api_keys k where k.id = (i.response_body->'key'->>'id')::uuid)`,
      ),
    );
    bad(
      'idempotency record holding a secret',
      await rows(c, `select id from idempotency_keys where response_body::text ~ '(sk_(svc_)?(test|live)_[0-9A-Za-z]{49}|rs_[0-9A-Za-z]{43})'`),
    );
    const [counts] = await rows<{ keys: number; rotations: number; events: number }>(
      c,
      `select (select count(*)::int from api_keys) as keys,
              (select count(*)::int from api_keys where rotated_from is not null) as rotations,
              (select count(*)::int from compliance_events) as events`,
    );
    // The hash chains, recomputed by the same code as `keyplane audit verify`.
    const database = await openDatabase({ databaseUrl, poolMax: 2 });
    try {
      const v = await verifyChains(database.db);
      if (v.firstBreak) violations.push(`compliance chain broken: ${JSON.stringify(v.firstBreak)}`);
    } finally {
      await database.close();
    }
    return { ...counts!, violations };
  } finally {
    await c.end();
  }
}

/**
 * Spend: every agent's live key has spent, in its stored cycle, exactly what the ledger holds for
 * that cycle of the debits made with any key of the agent (a rotation's overlapping predecessor
 * included) or with any key below it in a delegation tree (its agent in their delegation_path), so
 * no debit was charged to a child without its ancestors or the reverse. And no cap is exceeded: in
 * the current cycle, a key's spend plus what its live, unexpired children still hold back of their
 * budgets (budget - spend) is within its cap (a service key's PATCH lowering a cap could break
 * this; these tests make none).
 */
async function spendInvariants(c: pg.Client, bad: (what: string, list: unknown[]) => void): Promise<void> {
  bad(
    'live key whose cycle spend is not the ledger of its own and its descendants\' debits in that cycle',
    await rows(
      c,
      `with charged as (
         select a.agent_id, l.cost_cents, l.created_at
           from spend_ledger l join api_keys u on u.id = l.api_key_id
          cross join unnest(u.delegation_path || u.agent_id) as a(agent_id))
       select k.id, k.monthly_spend_cents as spend, coalesce(sum(ch.cost_cents), 0)::int as ledger
         from api_keys k
         left join charged ch on ch.agent_id = k.agent_id
                             and ch.created_at >= k.spend_cycle_start and ch.created_at < k.spend_cycle_start + interval '30 days'
        where k.revoked_at is null
        group by k.id
       having k.monthly_spend_cents <> coalesce(sum(ch.cost_cents), 0)`,
    ),
  );
  bad(
    'live key whose cycle spend and its children\'s reservations exceed its cap',
    await rows(
      c,
      `select k.id, k.monthly_spend_cents as spend, r.reserved, k.monthly_cap_cents as cap
         from api_keys k
        cross join lateral (
          select coalesce(sum(greatest(0, coalesce(ch.monthly_cap_cents, 0) - ch.monthly_spend_cents)), 0)::int as reserved
            from api_keys ch
           where ch.parent_agent_id = k.agent_id and ch.revoked_at is null and (ch.expires_at is null or ch.expires_at > now())) r
        where k.revoked_at is null and k.monthly_cap_cents is not null
          -- A cycle is 30 days: a stored cycle that began less than 30 days ago is the current one.
          and (case when k.spend_cycle_start > now() - interval '30 days' then k.monthly_spend_cents else 0 end) + r.reserved > k.monthly_cap_cents`,
    ),
  );
}

/** The ids of the given keys that are missing from the database. */
export async function missingKeys(databaseUrl: string, ids: string[]): Promise<string[]> {
  if (ids.length === 0) return [];
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    const found = new Set((await c.query('select id from api_keys where id = any($1::uuid[])', [ids])).rows.map((r) => r.id as string));
    return ids.filter((id) => !found.has(id));
  } finally {
    await c.end();
  }
}
