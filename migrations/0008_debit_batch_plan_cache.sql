-- keyplane's sessions plan every prepared statement once, generically (plan_cache_mode =
-- force_generic_plan, src/db/client.ts), and PL/pgSQL plans its own statements under the same
-- setting. For this function that is wrong: its ledger probe (`api_key_id = ANY (chain) AND
-- request_id = …`) planned generically, once per connection and while the ledger was still empty,
-- cost 836 µs per debit on the bench's hot key (pg_stat_statements, 11,000 ledger rows) against 16 µs
-- planned with its values, and the verify-with-debit scenario fell from 0.37 to 0.17 of the baseline.
-- Postgres's default choice (custom plans, kept while the generic one is no cheaper) is what every
-- earlier measurement of this function ran under; it keeps it, whatever the session's setting.
ALTER FUNCTION keyplane_debit_batch(jsonb) SET plan_cache_mode = auto;
