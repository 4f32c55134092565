-- Custom SQL migration file, put your code below! --
-- The debits of one key, applied in order under ONE row lock (domain/spend.service.ts batches the
-- concurrent debits of a key into one call). Each item is decided exactly as a single debit would
-- be, against the spend left by the items before it: an earlier debit of its request_id (in the
-- rotation chain's ledger, or earlier in this batch) is a replay; a revoked key debits nothing;
-- spend in the item's cycle plus its cost must stay within the cap. Debited items get their ledger
-- rows and the key row is written, once each, at the end. The caller's implicit transaction commits
-- asynchronously (set_config below) and the caller flushes the WAL before answering.
--
-- The earlier debits of the batch's request_ids are read in ONE query, planned afresh on each call
-- (EXECUTE): a plan cached while the ledger was empty scanned the whole ledger for every debit once
-- it had grown (found in the bench: 37 million ledger rows read in 30 seconds). The batch's ledger
-- rows are written by one INSERT at the end.
CREATE FUNCTION keyplane_debit_batch(p_key uuid, p_account uuid, p_items jsonb)
RETURNS TABLE (
  o_ord int, o_outcome text, o_prior_cost int, o_spent bigint, o_cap int, o_spend_stored bigint,
  o_cycle_start timestamptz, o_monthly_spend_cents bigint, o_spend_cycle_start timestamptz, o_last_used_at timestamptz
)
LANGUAGE plpgsql AS $$
DECLARE
  k api_keys%ROWTYPE;
  it record;
  chain uuid[];
  prior int;
  in_cycle bigint;
  changed boolean := false;
  seen jsonb := '{}'::jsonb;
  l_ids uuid[] := '{}';
  l_requests text[] := '{}';
  l_costs int[] := '{}';
  l_cycles timestamptz[] := '{}';
  l_ats timestamptz[] := '{}';
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  SELECT * INTO k FROM api_keys a WHERE a.id = p_key AND a.account_id = p_account FOR UPDATE;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  WITH RECURSIVE c(id, rotated_from) AS (
    SELECT a.id, a.rotated_from FROM api_keys a WHERE a.id = p_key AND a.account_id = p_account
    UNION ALL
    SELECT a.id, a.rotated_from FROM api_keys a JOIN c ON a.id = c.rotated_from
  )
  SELECT array_agg(c.id) INTO chain FROM c;
  -- request_id -> cost of its earlier debit, in the chain's ledger; the loop adds this batch's own.
  -- One index probe per request_id (LATERAL ... LIMIT 1): as a join, the planner read every ledger
  -- row of a hot key into a hash table on every call (found with perf in the bench).
  EXECUTE 'SELECT coalesce(jsonb_object_agg(x.request_id, p.cost_cents), ''{}''::jsonb)
             FROM jsonb_to_recordset($2) AS x(request_id text)
             CROSS JOIN LATERAL (SELECT l.cost_cents FROM spend_ledger l
                                  WHERE l.api_key_id = ANY ($1) AND l.request_id = x.request_id LIMIT 1) p'
    INTO seen USING chain, p_items;

  FOR it IN
    SELECT * FROM jsonb_to_recordset(p_items)
      AS x(ord int, id uuid, request_id text, cost int, cycle timestamptz, at timestamptz, stale_before timestamptz)
    ORDER BY x.ord
  LOOP
    o_ord := it.ord;
    o_outcome := NULL; o_prior_cost := NULL; o_spent := NULL; o_cap := NULL; o_spend_stored := NULL;
    o_cycle_start := NULL; o_monthly_spend_cents := NULL; o_spend_cycle_start := NULL; o_last_used_at := NULL;
    prior := (seen ->> it.request_id)::int;
    in_cycle := CASE WHEN k.spend_cycle_start >= it.cycle THEN k.monthly_spend_cents ELSE 0 END;
    IF prior IS NOT NULL THEN
      o_outcome := 'replayed';
      o_prior_cost := prior;
    ELSIF k.revoked_at IS NOT NULL THEN
      o_outcome := 'revoked';
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

  IF changed THEN
    INSERT INTO spend_ledger (id, account_id, api_key_id, request_id, cost_cents, cycle_start, created_at)
    SELECT d.id, k.account_id, k.id, d.request_id, d.cost, d.cycle, d.at
      FROM unnest(l_ids, l_requests, l_costs, l_cycles, l_ats) AS d(id, request_id, cost, cycle, at);
    UPDATE api_keys a
       SET monthly_spend_cents = k.monthly_spend_cents, spend_cycle_start = k.spend_cycle_start, last_used_at = k.last_used_at
     WHERE a.id = p_key;
  END IF;
END
$$;
