-- Compliance events and the spend ledger are append-only: the role the app uses can insert their
-- rows, never change or remove them (an operator who must archive events exports them; see README
-- "Retention"). The ledger is guarded for the same reason: a key's spend must always equal its sum.
CREATE OR REPLACE FUNCTION keyplane_refuse_event_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'compliance_events is append-only (% refused)', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END;
$$;

-- An event is inserted in the transaction of the change it records, without its link; the linker
-- (domain/audit/linker.ts) fills seq, prev_hash and hash once, in order, under the account's row
-- lock. That one UPDATE is the only change ever allowed: every other column must stay as it was
-- (item_json included: the UPDATE may not write it), and a linked event can never be changed again.
-- The trigger then prints the event's feed item (audit_item.sql) from the linked row, so item_json
-- is only ever keyplane_audit_item of the row it belongs to, and is written once.
--
-- The columns are compared one by one rather than as to_jsonb(NEW) - link = to_jsonb(OLD) - link:
-- building two jsonb documents of every linked row cost more than half of what linking an event
-- costs. test/integration/event-linker.test.ts tries to change each column the table has while
-- linking, so a column added to the table but not here fails the suite.
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

CREATE OR REPLACE TRIGGER compliance_events_append_only
  BEFORE DELETE ON compliance_events
  FOR EACH ROW EXECUTE FUNCTION keyplane_refuse_event_change();

CREATE OR REPLACE TRIGGER compliance_events_no_truncate
  BEFORE TRUNCATE ON compliance_events
  FOR EACH STATEMENT EXECUTE FUNCTION keyplane_refuse_event_change();

CREATE OR REPLACE TRIGGER compliance_events_link_once
  BEFORE UPDATE ON compliance_events
  FOR EACH ROW EXECUTE FUNCTION keyplane_link_event_once();

CREATE OR REPLACE TRIGGER spend_ledger_append_only
  BEFORE UPDATE OR DELETE ON spend_ledger
  FOR EACH ROW EXECUTE FUNCTION keyplane_refuse_event_change();
