-- No query reads compliance_events by (account_id, created_at, id): the feed reads the actor,
-- subject and related indexes, the linker its partial index of waiting events, verification and
-- export the chain index (account_id, seq), and the account's foreign key is served by any index
-- that starts with account_id. Every event writes each index twice (its insert, then its link,
-- which changes seq and so cannot be a HOT update), so an index nobody reads is pure write cost.
DROP INDEX "compliance_events_account_idx";
