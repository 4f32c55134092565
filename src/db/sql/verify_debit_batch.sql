-- keyplane_verify_debit_batch: verifications with a debit, many per call, each decided under its
-- key's row lock. keyplane calls it once per batch of debits (src/db/queries/spend.queries.ts; the
-- batching is src/db/group-commit.ts) and commits synchronously: an instance runs one debit
-- statement at a time, so its next batch waits for this answer whether or not the row lock outlives
-- the commit, and an answer is durable before it is given.
--
-- Each item is {ord, token_hash, tiers, line, line_optional, id, request_id, cost, at, stale_before}.
-- The rules are keyplane's (src/domain/verify/rules.ts), sent as data: `tiers` are the permission
-- tiers that allow the verb, `line_optional` whether a line-scoped key may act naming no line. The
-- order of the checks is the answer's: unknown, revoked, suspended or expired first (also for a retried
-- request_id, so such a key never answers a replay), then tier, then line, then replay, then cap.
--
-- Delegation: a delegated key (delegation_path: its ancestors' agent ids, root first) debits only
-- within its own budget (its cap) and every ancestor's cap, and each debit is charged to the key and
-- to every ancestor (their monthly_spend_cents), one row in the ledger (the key used). The items are
-- decided tree by tree in one global order, the tree's root agent first, then by depth, so every
-- writer of a tree takes the root's lock before any other of its rows (no two calls wait on each
-- other). Before a delegated key's items the ancestors' rows are locked (root first) and read
-- fresh, after the earlier keys' pending changes are written (they may be those ancestors); the
-- ancestors' new spend is written when the key's items are done. An ancestor without a live row
-- (revoked), suspended or expired at `at` makes the item invalid. A key that has delegated keeps its
-- live children's unspent budgets (budget less spend) out of its own debits.
--
-- Spend follows the agent across rotations: a request_id already debited anywhere in the key's
-- rotation chain (rotated_from, recursively) is a replay, so a retry made with the successor key
-- after a rotation debits nothing twice.
--
-- The answer is plain values, cheap for Postgres to produce: per item its outcome, what it saw (a
-- replay's earlier cost, a refused cap's spend, cap and cycle) and the three columns a debit changes
-- (monthly_spend_cents, spend_cycle_start, last_used_at) as the item left them; the key row itself
-- once per key per call (o_key, on the key's first item). keyplane builds each item's key object
-- from those (toKeyObject), including which spend the current cycle shows.
CREATE OR REPLACE FUNCTION keyplane_verify_debit_batch(p_items jsonb)
RETURNS TABLE (
  o_ord int, o_outcome text, o_prior_cost int, o_spent bigint, o_cap int, o_cycle timestamptz,
  o_key_id uuid, o_spend bigint, o_spend_cycle timestamptz, o_last_used timestamptz, o_key api_keys
)
LANGUAGE plpgsql
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  k api_keys%ROWTYPE;
  cur_key uuid;
  changed boolean := false;
  it record;
  chain uuid[];
  prior int;
  v_anchor timestamptz;
  v_cycle timestamptz;
  in_cycle bigint;
  seen jsonb;
  key_start int;
  key_sent boolean;
  requests_by_hash jsonb;
  l_ids uuid[] := '{}';
  l_accounts uuid[] := '{}';
  l_keys uuid[] := '{}';
  l_requests text[] := '{}';
  l_costs int[] := '{}';
  l_cycles timestamptz[] := '{}';
  l_ats timestamptz[] := '{}';
  v_token_revoked timestamptz;
  v_direct boolean;
  t_ids uuid[] := '{}';
  t_ats timestamptz[] := '{}';
  t_stale timestamptz[] := '{}';
  l_spent bigint[] := '{}';
  l_caps int[] := '{}';
  u_ids uuid[] := '{}';
  u_spends bigint[] := '{}';
  u_cycles timestamptz[] := '{}';
  u_used timestamptz[] := '{}';
  -- The current key's ancestors (root first), as locked and changed by its items.
  a_ids uuid[];
  a_caps int[];
  a_spends bigint[];
  a_cycles timestamptz[];
  a_anchors timestamptz[];
  a_suspended boolean;
  a_ends timestamptz;
  a_missing boolean;
  a_changed boolean := false;
  a_in bigint[];
  a_now timestamptz[];
  anc api_keys%ROWTYPE;
  reserved bigint;
  i int;
BEGIN
  -- Each token hash's request_ids in this call, for its key's one ledger probe.
  SELECT coalesce(jsonb_object_agg(g.token_hash, g.requests), '{}'::jsonb) INTO requests_by_hash
    FROM (SELECT x.token_hash, jsonb_agg(DISTINCT x.request_id) AS requests
            FROM jsonb_to_recordset(p_items) AS x(token_hash text, request_id text)
           WHERE x.token_hash IS NOT NULL AND x.request_id IS NOT NULL
           GROUP BY x.token_hash) g;
  FOR it IN
    -- A hash names at most one row, for good (rows are never deleted, a token_hash never changes), so
    -- the key id is read here without a lock; the row itself is locked and read below, in id order.
    -- Items of unknown hashes come after every key, and the empty object appended (ord NULL) last: it
    -- ends the last key. The LATERAL … LIMIT 1 keeps the lookup an index probe per item: as a plain
    -- join, the generic plan hashed the items and walked the whole api_keys index.
    --
    -- A key in its rotation's overlap (revoked_at after `at`) is one agent with its chain's live key:
    -- its items are decided on, and debit, the live key's row (found by agent_id on
    -- api_keys_agent_live_uq), so the agent has one spend and one cap whichever key is used. That
    -- second probe runs only for such a key.
    SELECT x.*, coalesce(l.id, a.id) AS key_id, a.id AS token_key_id, a.delegation_path AS path
      FROM jsonb_to_recordset(p_items || '[{}]'::jsonb)
        AS x(ord int, token_hash text, tiers text[], line text, line_optional boolean, id uuid,
             request_id text, cost int, at timestamptz, stale_before timestamptz)
      LEFT JOIN LATERAL (SELECT a.id, a.agent_id, a.revoked_at, a.delegation_path FROM api_keys a WHERE a.token_hash = x.token_hash LIMIT 1) a ON true
      LEFT JOIN LATERAL (SELECT l.id FROM api_keys l
                          WHERE a.revoked_at > x.at AND l.agent_id = a.agent_id AND l.revoked_at IS NULL LIMIT 1) l ON true
     ORDER BY x.ord IS NULL, coalesce(a.delegation_path[1], a.agent_id) NULLS LAST, cardinality(a.delegation_path),
              coalesce(l.id, a.id), x.ord
  LOOP
    IF cur_key IS DISTINCT FROM it.key_id THEN
      -- The previous key is done: remember its new state for the one UPDATE at the end.
      IF changed THEN
        u_ids := u_ids || k.id;
        u_spends := u_spends || k.monthly_spend_cents;
        u_cycles := u_cycles || k.spend_cycle_start;
        u_used := u_used || k.last_used_at;
      END IF;
      IF a_changed THEN
        UPDATE api_keys a SET monthly_spend_cents = u.spend, spend_cycle_start = u.cycle
          FROM unnest(a_ids, a_spends, a_cycles) AS u(id, spend, cycle) WHERE a.id = u.id;
        a_changed := false;
      END IF;
      cur_key := it.key_id;
      changed := false;
      key_sent := false;
      -- This key's debits in this call are l_requests[key_start:], for a retry within the call.
      key_start := cardinality(l_requests) + 1;
      a_ids := '{}'; a_caps := '{}'; a_spends := '{}'; a_cycles := '{}'; a_anchors := '{}';
      a_suspended := false; a_ends := NULL; a_missing := false;
      IF it.key_id IS NOT NULL AND cardinality(it.path) > 0 THEN
        -- The earlier keys' changes first: an ancestor of this key may be among them.
        IF cardinality(u_ids) > 0 THEN
          UPDATE api_keys a
             SET monthly_spend_cents = u.spend, spend_cycle_start = u.cycle, last_used_at = u.used
            FROM unnest(u_ids, u_spends, u_cycles, u_used) AS u(id, spend, cycle, used)
           WHERE a.id = u.id;
          u_ids := '{}'; u_spends := '{}'; u_cycles := '{}'; u_used := '{}';
        END IF;
        FOR i IN 1 .. cardinality(it.path) LOOP
          SELECT * INTO anc FROM api_keys a WHERE a.agent_id = it.path[i] AND a.revoked_at IS NULL FOR UPDATE;
          IF NOT FOUND THEN
            -- Rotated while this waited for its lock: the successor is committed now.
            SELECT * INTO anc FROM api_keys a WHERE a.agent_id = it.path[i] AND a.revoked_at IS NULL FOR UPDATE;
          END IF;
          IF NOT FOUND THEN
            a_missing := true;
          ELSE
            a_ids := a_ids || anc.id;
            a_caps := a_caps || anc.monthly_cap_cents;
            a_spends := a_spends || anc.monthly_spend_cents;
            a_cycles := a_cycles || anc.spend_cycle_start;
            a_anchors := a_anchors || date_trunc('milliseconds', anc.cycle_anchor);
            a_suspended := a_suspended OR anc.suspended_at IS NOT NULL;
            a_ends := least(a_ends, anc.expires_at);
          END IF;
        END LOOP;
      END IF;
      IF it.key_id IS NOT NULL THEN
        SELECT * INTO k FROM api_keys a WHERE a.id = it.key_id FOR UPDATE;
        reserved := 0;
        IF k.has_delegated THEN
          SELECT coalesce(sum(greatest(0, coalesce(c.monthly_cap_cents, 0) - c.monthly_spend_cents)), 0) INTO reserved
            FROM api_keys c
           WHERE c.parent_agent_id = k.agent_id AND c.revoked_at IS NULL AND (c.expires_at IS NULL OR c.expires_at > it.at);
        END IF;
        v_anchor := date_trunc('milliseconds', k.cycle_anchor);
        WITH RECURSIVE c(id, rotated_from) AS (
          SELECT a.id, a.rotated_from FROM api_keys a WHERE a.id = k.id
          UNION ALL
          SELECT a.id, a.rotated_from FROM api_keys a JOIN c ON a.id = c.rotated_from
        )
        SELECT array_agg(c.id) INTO chain FROM c;
        -- Earlier debits of this key's request_ids anywhere in its chain's ledger: one index probe per
        -- (chain key, request_id), taken after the row lock, so a debit committed by another call
        -- before it is seen. The LATERAL … LIMIT 1 keeps each a probe of spend_ledger_request_uq.
        SELECT coalesce(jsonb_object_agg(r.request_id, l.cost_cents), '{}'::jsonb) INTO seen
          FROM unnest(chain) AS c(id)
         CROSS JOIN jsonb_array_elements_text(requests_by_hash -> k.token_hash) AS r(request_id)
         CROSS JOIN LATERAL (SELECT s.cost_cents FROM spend_ledger s
                              WHERE s.api_key_id = c.id AND s.request_id = r.request_id LIMIT 1) l;
      END IF;
    END IF;
    EXIT WHEN it.ord IS NULL;

    o_ord := it.ord;
    o_outcome := NULL; o_prior_cost := NULL; o_spent := NULL; o_cap := NULL; o_cycle := NULL;
    o_key_id := NULL; o_spend := NULL; o_spend_cycle := NULL; o_last_used := NULL;
    o_key := NULL;
    v_token_revoked := NULL;
    v_direct := it.key_id IS NOT DISTINCT FROM it.token_key_id;
    IF NOT v_direct THEN
      -- An overlapping key's item, on its live key's locked row: its own overlap re-read now, so an
      -- overlap ended (DELETE, a further rotation) before this lock is seen.
      SELECT a.revoked_at INTO v_token_revoked FROM api_keys a WHERE a.id = it.token_key_id;
    END IF;
    -- The key's state at `at`, by the rule of src/domain/keys/key-state.ts (keep the two alike):
    -- revoked_at at or before `at` is revoked (after it, the key is in its rotation's overlap and
    -- works), then suspended, then expired. Checked first, also for a retried request_id.
    IF it.key_id IS NULL OR k.revoked_at <= it.at OR v_token_revoked <= it.at THEN
      o_outcome := 'invalid';
    ELSIF k.revoked_at IS NOT NULL THEN
      -- The live key was rotated between the lookup above and its lock: decide the item again in
      -- the next call, on the chain's new live key (src/domain/verify/debit.ts).
      o_outcome := 'retry';
    ELSIF k.suspended_at IS NOT NULL THEN
      o_outcome := 'suspended';
    ELSIF k.expires_at <= it.at THEN
      o_outcome := 'expired';
    ELSIF a_missing OR a_suspended OR a_ends <= it.at THEN
      o_outcome := 'invalid';
    END IF;
    IF o_outcome IS NOT NULL THEN
      RETURN NEXT;
      CONTINUE;
    END IF;
    -- The current spend cycle at `at`: cycles of 30 days from cycle_anchor, at millisecond precision
    -- (cycleStartFor in src/domain/keys/key-object.ts is the same rule).
    v_cycle := v_anchor + make_interval(secs => (floor(greatest(0, extract(epoch from (it.at - v_anchor))) / 2592000) * 2592000)::float8);
    IF NOT coalesce(k.permissions = ANY (it.tiers), false)
       OR NOT (k.line_id IS NULL OR (it.line IS NULL AND coalesce(it.line_optional, false))
               OR coalesce(k.line_id::text = it.line, false)) THEN
      o_outcome := 'refused';
    ELSE
      in_cycle := CASE WHEN k.spend_cycle_start >= v_cycle THEN k.monthly_spend_cents ELSE 0 END;
      -- An earlier debit of this request_id: in the chain's ledger (probed above) or earlier in this
      -- call (this key's part of the ledger rows to insert; array_position, not a growing jsonb).
      prior := (seen ->> it.request_id)::int;
      IF prior IS NULL AND NOT v_direct THEN
        -- An overlapping key's request_id was not in its live key's probe (that probed the live
        -- key's own token's request_ids): probe the chain for it alone.
        SELECT l.cost_cents INTO prior
          FROM unnest(chain) AS c(id)
         CROSS JOIN LATERAL (SELECT s.cost_cents FROM spend_ledger s
                              WHERE s.api_key_id = c.id AND s.request_id = it.request_id LIMIT 1) l
         LIMIT 1;
      END IF;
      IF prior IS NULL THEN
        prior := l_costs[array_position(l_requests, it.request_id, key_start)];
      END IF;
      IF prior IS NOT NULL THEN
        o_outcome := 'replayed';
        o_prior_cost := prior;
        -- A valid answer refreshes last_used_at; the same request_id with another cost is the
        -- caller's error (409), not a use.
        IF prior = it.cost AND NOT v_direct THEN
          t_ids := t_ids || it.token_key_id; t_ats := t_ats || it.at; t_stale := t_stale || it.stale_before;
        ELSIF prior = it.cost AND (k.last_used_at IS NULL OR k.last_used_at < it.stale_before) THEN
          k.last_used_at := it.at;
          changed := true;
        END IF;
      ELSIF k.monthly_cap_cents IS NOT NULL AND in_cycle + reserved + it.cost > k.monthly_cap_cents THEN
        o_outcome := 'cap_exceeded';
        -- What is spent, or held back for the key's own delegated keys.
        o_spent := in_cycle + reserved;
        o_cap := k.monthly_cap_cents;
        o_cycle := v_cycle;
      END IF;
      IF o_outcome IS NULL AND cardinality(a_ids) > 0 THEN
        -- Every ancestor's cap at `at`, in its own cycle; the first that would be exceeded answers.
        a_in := '{}'; a_now := '{}';
        FOR i IN 1 .. cardinality(a_ids) LOOP
          a_now := a_now || (a_anchors[i] + make_interval(secs => (floor(greatest(0, extract(epoch from (it.at - a_anchors[i]))) / 2592000) * 2592000)::float8));
          a_in := a_in || CASE WHEN a_cycles[i] >= a_now[i] THEN a_spends[i] ELSE 0 END;
          IF o_outcome IS NULL AND a_caps[i] IS NOT NULL AND a_in[i] + it.cost > a_caps[i] THEN
            o_outcome := 'cap_exceeded';
            o_spent := a_in[i];
            o_cap := a_caps[i];
            o_cycle := a_now[i];
          END IF;
        END LOOP;
      END IF;
      IF o_outcome IS NULL THEN
        FOR i IN 1 .. cardinality(a_ids) LOOP
          a_spends[i] := a_in[i] + it.cost;
          a_cycles[i] := GREATEST(a_cycles[i], a_now[i]);
          a_changed := true;
        END LOOP;
        k.monthly_spend_cents := in_cycle + it.cost;
        -- GREATEST never moves the stored cycle backwards; GREATEST(NULL, x) = x.
        k.spend_cycle_start := GREATEST(k.spend_cycle_start, v_cycle);
        -- last_used_at is the key used's: an overlapping key's own, not its live key's (whose
        -- first use ends a self-rotation's pending state).
        IF NOT v_direct THEN
          t_ids := t_ids || it.token_key_id; t_ats := t_ats || it.at; t_stale := t_stale || it.stale_before;
        ELSIF k.last_used_at IS NULL OR k.last_used_at < it.stale_before THEN
          k.last_used_at := it.at;
        END IF;
        l_ids := l_ids || it.id;
        l_accounts := l_accounts || k.account_id;
        -- The ledger row names the key the debit was made with (an overlapping key's own id), so each
        -- key's feed shows its own debits; the spend counted is the live key's.
        l_keys := l_keys || it.token_key_id;
        l_requests := l_requests || it.request_id;
        l_costs := l_costs || it.cost;
        l_cycles := l_cycles || k.spend_cycle_start;
        l_ats := l_ats || it.at;
        -- What the feed's billing item shows: the spend this debit left and the cap it was held to.
        l_spent := l_spent || k.monthly_spend_cents;
        l_caps := l_caps || k.monthly_cap_cents;
        changed := true;
        o_outcome := 'debited';
      END IF;
    END IF;
    -- The key as this item left it: what a debit changes on every row, the rest of the row once per
    -- key per call.
    o_key_id := k.id;
    o_spend := k.monthly_spend_cents;
    o_spend_cycle := k.spend_cycle_start;
    o_last_used := k.last_used_at;
    IF NOT key_sent THEN
      o_key := k;
      key_sent := true;
    END IF;
    RETURN NEXT;
  END LOOP;

  IF cardinality(l_ids) > 0 THEN
    INSERT INTO spend_ledger (id, account_id, api_key_id, request_id, cost_cents, cycle_start, created_at, spent_after_cents, cap_cents)
    SELECT d.id, d.account_id, d.key_id, d.request_id, d.cost, d.cycle, d.at, d.spent, d.cap
      FROM unnest(l_ids, l_accounts, l_keys, l_requests, l_costs, l_cycles, l_ats, l_spent, l_caps)
        AS d(id, account_id, key_id, request_id, cost, cycle, at, spent, cap);
  END IF;
  IF cardinality(u_ids) > 0 THEN
    UPDATE api_keys a
       SET monthly_spend_cents = u.spend, spend_cycle_start = u.cycle, last_used_at = u.used
      FROM unnest(u_ids, u_spends, u_cycles, u_used) AS u(id, spend, cycle, used)
     WHERE a.id = u.id;
  END IF;
  IF cardinality(t_ids) > 0 THEN
    -- Overlapping keys used through this call: their own last_used_at, at most once a second, and
    -- only while their overlap runs. After the live keys' locks, as every writer of both orders them.
    UPDATE api_keys a
       SET last_used_at = t.at
      FROM (SELECT DISTINCT ON (x.id) x.id, x.at, x.stale
              FROM unnest(t_ids, t_ats, t_stale) AS x(id, at, stale) ORDER BY x.id, x.at DESC) t
     WHERE a.id = t.id AND a.revoked_at > t.at AND (a.last_used_at IS NULL OR a.last_used_at < t.stale);
  END IF;
END
$$;
