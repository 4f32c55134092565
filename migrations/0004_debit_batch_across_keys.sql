-- Debits of MANY keys in one call (domain/spend.service.ts sends every debit waiting on an instance,
-- whatever its key). 0003 took one key's debits per call; with the load spread over many keys most
-- calls carried one debit, and each paid a function call, a plan, a commit and a round trip of its
-- own (the bench, 50 keys: 634 µs of Postgres CPU per debit).
--
-- Each key is decided exactly as 0003 decides it: its row taken FOR UPDATE, its items in arrival
-- order against the spend left by the items before them; an earlier debit of a request_id (in the
-- rotation chain's ledger, or earlier in this call for the same key) is a replay; a revoked key
-- debits nothing; spend in the item's cycle plus its cost must stay within the cap. An item whose
-- key row does not exist (or not in its account) gets no output row. Keys are locked in id order,
-- so two instances' calls can never deadlock on each other. All ledger rows are written by one
-- INSERT and all changed key rows by one UPDATE, at the end. The implicit transaction commits
-- asynchronously (set_config below) and the caller flushes the WAL before answering.
--
-- enable_seqscan = off for this function's own statements: their plans are cached per connection,
-- and a plan made while the ledger was small would scan the whole ledger for each debit once it has
-- grown (0003 found 37 million ledger rows read in 30 seconds and planned its lookup afresh on every
-- call with EXECUTE, which cost 25 % of the call). Every statement here has an index that matches it;
-- this makes the cached plans use them whatever the table's size when they were made.
--
-- 0003's per-key signature stays for instances of the previous release during a rolling deploy,
-- now a wrapper of this one (defined below it), so the rules exist once.
CREATE FUNCTION keyplane_debit_batch(p_items jsonb)
RETURNS TABLE (
  o_ord int, o_outcome text, o_prior_cost int, o_spent bigint, o_cap int, o_spend_stored bigint,
  o_cycle_start timestamptz, o_monthly_spend_cents bigint, o_spend_cycle_start timestamptz, o_last_used_at timestamptz
)
LANGUAGE plpgsql
SET enable_seqscan = off
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
      seen := '{}'::jsonb;
      SELECT * INTO k FROM api_keys a WHERE a.id = it.key_id AND a.account_id = it.account_id FOR UPDATE;
      have_key := FOUND;
      IF have_key THEN
        WITH RECURSIVE c(id, rotated_from) AS (
          SELECT a.id, a.rotated_from FROM api_keys a WHERE a.id = k.id
          UNION ALL
          SELECT a.id, a.rotated_from FROM api_keys a JOIN c ON a.id = c.rotated_from
        )
        SELECT array_agg(c.id) INTO chain FROM c;
      END IF;
    END IF;
    CONTINUE WHEN NOT have_key;

    o_ord := it.ord;
    o_outcome := NULL; o_prior_cost := NULL; o_spent := NULL; o_cap := NULL; o_spend_stored := NULL;
    o_cycle_start := NULL; o_monthly_spend_cents := NULL; o_spend_cycle_start := NULL; o_last_used_at := NULL;
    -- An earlier debit of this request_id: in this call, else in the chain's ledger (one index probe).
    prior := (seen ->> it.request_id)::int;
    IF prior IS NULL THEN
      SELECT l.cost_cents INTO prior FROM spend_ledger l
       WHERE l.api_key_id = ANY (chain) AND l.request_id = it.request_id LIMIT 1;
    END IF;
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
--> statement-breakpoint
CREATE OR REPLACE FUNCTION keyplane_debit_batch(p_key uuid, p_account uuid, p_items jsonb)
RETURNS TABLE (
  o_ord int, o_outcome text, o_prior_cost int, o_spent bigint, o_cap int, o_spend_stored bigint,
  o_cycle_start timestamptz, o_monthly_spend_cents bigint, o_spend_cycle_start timestamptz, o_last_used_at timestamptz
)
LANGUAGE sql AS $$
  SELECT * FROM keyplane_debit_batch(
    (SELECT coalesce(jsonb_agg(x || jsonb_build_object('key_id', p_key, 'account_id', p_account)), '[]'::jsonb)
       FROM jsonb_array_elements(p_items) AS x)
  )
$$;
