-- A key revoked while a debit waited for its row lock answers revoked, also for a retried request_id.
--
-- Until now the function looked for an earlier debit of the request_id before it looked at
-- revoked_at, so a retry whose key was revoked (committed) after verify had read the row, but before
-- this function locked it, answered valid and `replayed`, while the same retry a moment later
-- answers invalid_api_key (verify reads the row first, and a revoked row never reaches the debit).
-- Now the revocation is checked first, under the row lock, so the answer no longer depends on when
-- the revoke committed. Nothing else changes: the same function as 0009, with two branches swapped.
CREATE OR REPLACE FUNCTION keyplane_debit_batch(p_items jsonb)
RETURNS TABLE (
  o_ord int, o_outcome text, o_prior_cost int, o_spent bigint, o_cap int, o_spend_stored bigint,
  o_cycle_start timestamptz, o_monthly_spend_cents bigint, o_spend_cycle_start timestamptz, o_last_used_at timestamptz
)
LANGUAGE plpgsql
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  k api_keys%ROWTYPE;
  cur_key uuid;
  cur_account uuid;
  have_key boolean := false;
  changed boolean := false;
  it record;
  chain uuid[];
  prior int;
  in_cycle bigint;
  seen jsonb;
  requests_by_key jsonb;
  l_ids uuid[] := '{}';
  l_accounts uuid[] := '{}';
  l_keys uuid[] := '{}';
  l_requests text[] := '{}';
  l_costs int[] := '{}';
  l_cycles timestamptz[] := '{}';
  l_ats timestamptz[] := '{}';
  u_ids uuid[] := '{}';
  u_spends bigint[] := '{}';
  u_cycles timestamptz[] := '{}';
  u_used timestamptz[] := '{}';
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  -- Each key's request_ids in this call, for its one ledger probe.
  SELECT coalesce(jsonb_object_agg(g.key_id, g.requests), '{}'::jsonb) INTO requests_by_key
    FROM (SELECT x.key_id::text AS key_id, jsonb_agg(DISTINCT x.request_id) AS requests
            FROM jsonb_to_recordset(p_items) AS x(key_id uuid, request_id text)
           WHERE x.key_id IS NOT NULL AND x.request_id IS NOT NULL
           GROUP BY x.key_id) g;
  FOR it IN
    -- The empty object appended is an item whose fields are all NULL, sorted last: it ends the last key.
    SELECT * FROM jsonb_to_recordset(p_items || '[{}]'::jsonb)
      AS x(ord int, key_id uuid, account_id uuid, id uuid, request_id text, cost int, cycle timestamptz, at timestamptz, stale_before timestamptz)
    ORDER BY x.key_id NULLS LAST, x.account_id, x.ord
  LOOP
    IF cur_key IS DISTINCT FROM it.key_id OR cur_account IS DISTINCT FROM it.account_id THEN
      -- The previous key is done: remember its new state for the one UPDATE at the end.
      IF changed THEN
        u_ids := u_ids || k.id;
        u_spends := u_spends || k.monthly_spend_cents;
        u_cycles := u_cycles || k.spend_cycle_start;
        u_used := u_used || k.last_used_at;
      END IF;
      EXIT WHEN it.key_id IS NULL;
      cur_key := it.key_id;
      cur_account := it.account_id;
      changed := false;
      SELECT * INTO k FROM api_keys a WHERE a.id = it.key_id AND a.account_id = it.account_id FOR UPDATE;
      have_key := FOUND;
      IF have_key THEN
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
         CROSS JOIN jsonb_array_elements_text(requests_by_key -> k.id::text) AS r(request_id)
         CROSS JOIN LATERAL (SELECT s.cost_cents FROM spend_ledger s
                              WHERE s.api_key_id = c.id AND s.request_id = r.request_id LIMIT 1) l;
      END IF;
    END IF;
    CONTINUE WHEN NOT have_key;

    o_ord := it.ord;
    o_outcome := NULL; o_prior_cost := NULL; o_spent := NULL; o_cap := NULL; o_spend_stored := NULL;
    o_cycle_start := NULL; o_monthly_spend_cents := NULL; o_spend_cycle_start := NULL; o_last_used_at := NULL;
    -- An earlier debit of this request_id: in the chain's ledger (probed above) or earlier in this call.
    -- A revoked key answers revoked even then (0011).
    prior := (seen ->> it.request_id)::int;
    in_cycle := CASE WHEN k.spend_cycle_start >= it.cycle THEN k.monthly_spend_cents ELSE 0 END;
    IF k.revoked_at IS NOT NULL THEN
      o_outcome := 'revoked';
    ELSIF prior IS NOT NULL THEN
      o_outcome := 'replayed';
      o_prior_cost := prior;
    ELSIF k.monthly_cap_cents IS NOT NULL AND in_cycle + it.cost > k.monthly_cap_cents THEN
      o_outcome := 'cap_exceeded';
      o_spent := in_cycle;
      o_cap := k.monthly_cap_cents;
      o_spend_stored := k.monthly_spend_cents;
      o_cycle_start := k.spend_cycle_start;
    ELSE
      k.monthly_spend_cents := in_cycle + it.cost;
      -- GREATEST never moves the stored cycle backwards; GREATEST(NULL, x) = x.
      k.spend_cycle_start := GREATEST(k.spend_cycle_start, it.cycle);
      IF k.last_used_at IS NULL OR k.last_used_at < it.stale_before THEN
        k.last_used_at := it.at;
      END IF;
      l_ids := l_ids || it.id;
      l_accounts := l_accounts || k.account_id;
      l_keys := l_keys || k.id;
      l_requests := l_requests || it.request_id;
      l_costs := l_costs || it.cost;
      l_cycles := l_cycles || k.spend_cycle_start;
      l_ats := l_ats || it.at;
      seen := seen || jsonb_build_object(it.request_id, it.cost);
      changed := true;
      o_outcome := 'debited';
      o_monthly_spend_cents := k.monthly_spend_cents;
      o_spend_cycle_start := k.spend_cycle_start;
      o_last_used_at := k.last_used_at;
    END IF;
    RETURN NEXT;
  END LOOP;

  IF cardinality(l_ids) > 0 THEN
    INSERT INTO spend_ledger (id, account_id, api_key_id, request_id, cost_cents, cycle_start, created_at)
    SELECT d.id, d.account_id, d.key_id, d.request_id, d.cost, d.cycle, d.at
      FROM unnest(l_ids, l_accounts, l_keys, l_requests, l_costs, l_cycles, l_ats) AS d(id, account_id, key_id, request_id, cost, cycle, at);
    UPDATE api_keys a
       SET monthly_spend_cents = u.spend, spend_cycle_start = u.cycle, last_used_at = u.used
      FROM unnest(u_ids, u_spends, u_cycles, u_used) AS u(id, spend, cycle, used)
     WHERE a.id = u.id;
  END IF;
END
$$;
