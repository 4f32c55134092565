-- Compliance events are append-only: the role the app uses can insert them, never change or
-- remove them. (An operator who must archive events exports them; see README "Retention".)
CREATE OR REPLACE FUNCTION keyplane_refuse_event_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'compliance_events is append-only (% refused)', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END;
$$;
--> statement-breakpoint
CREATE TRIGGER compliance_events_append_only
  BEFORE UPDATE OR DELETE ON compliance_events
  FOR EACH ROW EXECUTE FUNCTION keyplane_refuse_event_change();
--> statement-breakpoint
CREATE TRIGGER compliance_events_no_truncate
  BEFORE TRUNCATE ON compliance_events
  FOR EACH STATEMENT EXECUTE FUNCTION keyplane_refuse_event_change();
--> statement-breakpoint
-- The spend ledger is append-only for the same reason: spend must always equal its sum.
CREATE TRIGGER spend_ledger_append_only
  BEFORE UPDATE OR DELETE ON spend_ledger
  FOR EACH ROW EXECUTE FUNCTION keyplane_refuse_event_change();
