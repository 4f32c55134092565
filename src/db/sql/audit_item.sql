-- The feed item of an event (the wire schema AuditEvent, field by field in its order): `data`
-- carries every field the event's hash covers (the event's own facts under `details`), plus seq,
-- prev_hash and hash, so an agent can recompute each link of its slice. A whitelist like a compiled
-- serializer: nothing else of the row reaches the feed. The time is printed as JavaScript's
-- Date#toISOString does (UTC, milliseconds).
--
-- The link-once trigger (compliance_events.sql) stores each event's item in item_json when the event
-- is linked, so the feed does not print it on every read: an event is read in many feed pages, and
-- printing an item from its row was about three quarters of the feed statement's time. The feed
-- falls back to this function where item_json is null. test/integration/json-sql.test.ts checks the
-- items against the stored rows, and that a linked item equals this function's output. Changing
-- the wire format therefore also needs a migration that clears item_json for re-printing.
CREATE OR REPLACE FUNCTION keyplane_audit_item(e compliance_events) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT '{"type":"compliance_event","id":"' || e.id::text
    || '","created_at":"' || to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
    || '","createdAt":"' || to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
    || '","data":{"event_type":' || coalesce(to_json(e.event_type)::text, 'null')
    || ',"account_id":"' || e.account_id::text
    || '","environment":' || coalesce(to_json(e.environment)::text, 'null')
    || ',"actor_kind":' || coalesce(to_json(e.actor_kind)::text, 'null')
    || ',"actor_key_id":' || coalesce('"' || e.actor_key_id::text || '"', 'null')
    || ',"actor_key_prefix":' || coalesce(to_json(e.actor_key_prefix)::text, 'null')
    || ',"subject_key_id":' || coalesce('"' || e.subject_key_id::text || '"', 'null')
    || ',"related_key_id":' || coalesce('"' || e.related_key_id::text || '"', 'null')
    || ',"request_id":' || coalesce(to_json(e.request_id)::text, 'null')
    || ',"ip":' || coalesce(to_json(e.ip)::text, 'null')
    || ',"user_agent":' || coalesce(to_json(e.user_agent)::text, 'null')
    || ',"details":' || e.data::text
    || ',"seq":' || coalesce(e.seq::text, 'null')
    || ',"prev_hash":' || coalesce(to_json(e.prev_hash)::text, 'null')
    || ',"hash":' || coalesce(to_json(e.hash)::text, 'null')
    || '}}'
$$;
