-- Each event's audit feed item, printed once when the event is linked instead of on every read.
-- An event is read in many feed pages (a page holds 100 of them, and every read adds one), and
-- printing an item from its row (to_char of the time, to_json escaping of eight texts, the jsonb
-- details as text) was about three quarters of the feed statement's time (see README,
-- "Performance"). Every column an item shows is fixed once the event is linked, so its text is too.
ALTER TABLE "compliance_events" ADD COLUMN "item_json" text;--> statement-breakpoint
-- An item is printed when its event is linked, never before: an unlinked event has none.
ALTER TABLE "compliance_events" ADD CONSTRAINT "compliance_events_item_ck" CHECK ("compliance_events"."item_json" is null or "compliance_events"."seq" is not null);
--> statement-breakpoint
-- The feed item of an event (the wire schema AuditEvent, http/audit.schemas.ts, field by field in
-- its order): `data` carries every field the event's hash covers (the event's own facts under
-- `details`), plus seq, prev_hash and hash, so an agent can recompute each link of its slice.
-- A whitelist like a compiled serializer: nothing else of the row reaches the feed. The time is
-- printed as JavaScript's Date#toISOString does (UTC, milliseconds). test/integration/json-sql.test.ts
-- checks the items against the stored rows, and that a linked item equals this function's output.
-- Changing the wire format means a new function and a migration that clears item_json for
-- re-printing; the feed falls back to this function where item_json is null.
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
--> statement-breakpoint
-- The link-once rule of 0005, now also printing the item: the only UPDATE allowed fills seq,
-- prev_hash and hash of a waiting event and leaves every other column as it was (item_json
-- included: the UPDATE may not write it); the trigger then prints the item from the linked row.
-- So item_json is only ever keyplane_audit_item of the row it belongs to, and is written once.
CREATE OR REPLACE FUNCTION keyplane_link_event_once() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.seq IS NULL AND NEW.seq IS NOT NULL
     AND (NEW.id, NEW.account_id, NEW.event_type, NEW.environment, NEW.actor_kind, NEW.actor_key_id,
          NEW.actor_key_prefix, NEW.subject_key_id, NEW.related_key_id, NEW.request_id, NEW.ip,
          NEW.user_agent, NEW.data, NEW.created_at, NEW.item_json)
         IS NOT DISTINCT FROM
         (OLD.id, OLD.account_id, OLD.event_type, OLD.environment, OLD.actor_kind, OLD.actor_key_id,
          OLD.actor_key_prefix, OLD.subject_key_id, OLD.related_key_id, OLD.request_id, OLD.ip,
          OLD.user_agent, OLD.data, OLD.created_at, OLD.item_json) THEN
    NEW.item_json := keyplane_audit_item(NEW);
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'compliance_events is append-only (UPDATE refused)'
    USING ERRCODE = 'insufficient_privilege';
END;
$$;
