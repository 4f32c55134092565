CREATE TABLE "child_key_counts" (
	"service_key_id" uuid NOT NULL,
	"shard" integer NOT NULL,
	"active" bigint NOT NULL,
	CONSTRAINT "child_key_counts_service_key_id_shard_pk" PRIMARY KEY("service_key_id","shard")
);
--> statement-breakpoint
ALTER TABLE "compliance_events" ALTER COLUMN "seq" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "compliance_events" ALTER COLUMN "prev_hash" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "compliance_events" ALTER COLUMN "hash" DROP NOT NULL;--> statement-breakpoint
CREATE INDEX "compliance_events_unlinked_idx" ON "compliance_events" USING btree ("account_id","created_at","id") WHERE "compliance_events"."seq" is null;--> statement-breakpoint
ALTER TABLE "compliance_events" ADD CONSTRAINT "compliance_events_link_ck" CHECK (("compliance_events"."seq" is null and "compliance_events"."prev_hash" is null and "compliance_events"."hash" is null) or ("compliance_events"."seq" is not null and "compliance_events"."prev_hash" is not null and "compliance_events"."hash" is not null));--> statement-breakpoint
-- An event is inserted in the transaction of the change it records, without its link; the linker
-- (src/domain/event-linker.ts) fills seq, prev_hash and hash once, in order, under the account's
-- row lock. That one UPDATE is the only change ever allowed: every other column must stay as it
-- was, and a linked event can never be changed again.
CREATE OR REPLACE FUNCTION keyplane_link_event_once() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.seq IS NULL AND NEW.seq IS NOT NULL
     AND (to_jsonb(NEW) - 'seq' - 'prev_hash' - 'hash') = (to_jsonb(OLD) - 'seq' - 'prev_hash' - 'hash') THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'compliance_events is append-only (UPDATE refused)'
    USING ERRCODE = 'insufficient_privilege';
END;
$$;
--> statement-breakpoint
DROP TRIGGER compliance_events_append_only ON compliance_events;
--> statement-breakpoint
CREATE TRIGGER compliance_events_append_only
  BEFORE DELETE ON compliance_events
  FOR EACH ROW EXECUTE FUNCTION keyplane_refuse_event_change();
--> statement-breakpoint
CREATE TRIGGER compliance_events_link_once
  BEFORE UPDATE ON compliance_events
  FOR EACH ROW EXECUTE FUNCTION keyplane_link_event_once();
--> statement-breakpoint
-- Active child keys per service key, in shards by backend pid (see child_key_counts in schema.ts).
INSERT INTO child_key_counts (service_key_id, shard, active)
SELECT created_by_service_key_id, 0, count(*) FROM api_keys
 WHERE created_by_service_key_id IS NOT NULL AND revoked_at IS NULL
 GROUP BY created_by_service_key_id;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION keyplane_count_minted_keys() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO child_key_counts AS c (service_key_id, shard, active)
  SELECT created_by_service_key_id, pg_backend_pid() % 16, count(*) FROM minted
   WHERE created_by_service_key_id IS NOT NULL AND revoked_at IS NULL
   GROUP BY created_by_service_key_id
  ON CONFLICT (service_key_id, shard) DO UPDATE SET active = c.active + excluded.active;
  RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION keyplane_count_changed_key() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  delta bigint := 0;
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.created_by_service_key_id IS NOT NULL AND OLD.revoked_at IS NULL THEN
    INSERT INTO child_key_counts AS c (service_key_id, shard, active)
    VALUES (OLD.created_by_service_key_id, pg_backend_pid() % 16, -1)
    ON CONFLICT (service_key_id, shard) DO UPDATE SET active = c.active - 1;
  END IF;
  IF TG_OP = 'UPDATE' AND NEW.created_by_service_key_id IS NOT NULL AND NEW.revoked_at IS NULL THEN
    INSERT INTO child_key_counts AS c (service_key_id, shard, active)
    VALUES (NEW.created_by_service_key_id, pg_backend_pid() % 16, 1)
    ON CONFLICT (service_key_id, shard) DO UPDATE SET active = c.active + 1;
  END IF;
  RETURN NULL;
END;
$$;
--> statement-breakpoint
-- Statement-level on INSERT (one counter write per statement, also for bulk inserts); row-level,
-- and only when revoked_at changes, on UPDATE (verify's last_used_at and debits never fire it).
CREATE TRIGGER api_keys_count_minted
  AFTER INSERT ON api_keys REFERENCING NEW TABLE AS minted
  FOR EACH STATEMENT EXECUTE FUNCTION keyplane_count_minted_keys();
--> statement-breakpoint
CREATE TRIGGER api_keys_count_revoked
  AFTER UPDATE OF revoked_at, created_by_service_key_id ON api_keys
  FOR EACH ROW WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
                     OR OLD.created_by_service_key_id IS DISTINCT FROM NEW.created_by_service_key_id)
  EXECUTE FUNCTION keyplane_count_changed_key();
--> statement-breakpoint
CREATE TRIGGER api_keys_count_deleted
  AFTER DELETE ON api_keys
  FOR EACH ROW EXECUTE FUNCTION keyplane_count_changed_key();
