-- Active (unrevoked, and not recorded expired by the expiry job) child keys per service key, in child_key_counts (see schema.ts), so that GET
-- /v1/keys reads its `total` from at most 16 rows instead of counting every key. Kept by triggers on
-- api_keys, so no write path can forget it. Each backend adds to the shard of its own pid: concurrent
-- mints under one service key do not queue on one counter row.
CREATE OR REPLACE FUNCTION keyplane_count_minted_keys() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO child_key_counts AS c (service_key_id, shard, active)
  SELECT created_by_service_key_id, pg_backend_pid() % 16, count(*) FROM minted
   WHERE created_by_service_key_id IS NOT NULL AND revoked_at IS NULL AND expiry_recorded_at IS NULL
   GROUP BY created_by_service_key_id
  ON CONFLICT (service_key_id, shard) DO UPDATE SET active = c.active + excluded.active;
  RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION keyplane_count_changed_key() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  delta bigint := 0;
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.created_by_service_key_id IS NOT NULL AND OLD.revoked_at IS NULL
     AND OLD.expiry_recorded_at IS NULL THEN
    INSERT INTO child_key_counts AS c (service_key_id, shard, active)
    VALUES (OLD.created_by_service_key_id, pg_backend_pid() % 16, -1)
    ON CONFLICT (service_key_id, shard) DO UPDATE SET active = c.active - 1;
  END IF;
  IF TG_OP = 'UPDATE' AND NEW.created_by_service_key_id IS NOT NULL AND NEW.revoked_at IS NULL
     AND NEW.expiry_recorded_at IS NULL THEN
    INSERT INTO child_key_counts AS c (service_key_id, shard, active)
    VALUES (NEW.created_by_service_key_id, pg_backend_pid() % 16, 1)
    ON CONFLICT (service_key_id, shard) DO UPDATE SET active = c.active + 1;
  END IF;
  RETURN NULL;
END;
$$;

-- Statement-level on INSERT (one counter write per statement, also for bulk inserts); row-level,
-- and only when revoked_at, expiry_recorded_at or the owner changes, on UPDATE (verify's last_used_at and debits never
-- fire it).
CREATE OR REPLACE TRIGGER api_keys_count_minted
  AFTER INSERT ON api_keys REFERENCING NEW TABLE AS minted
  FOR EACH STATEMENT EXECUTE FUNCTION keyplane_count_minted_keys();

CREATE OR REPLACE TRIGGER api_keys_count_revoked
  AFTER UPDATE OF revoked_at, expiry_recorded_at, created_by_service_key_id ON api_keys
  FOR EACH ROW WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
                     OR OLD.expiry_recorded_at IS DISTINCT FROM NEW.expiry_recorded_at
                     OR OLD.created_by_service_key_id IS DISTINCT FROM NEW.created_by_service_key_id)
  EXECUTE FUNCTION keyplane_count_changed_key();

CREATE OR REPLACE TRIGGER api_keys_count_deleted
  AFTER DELETE ON api_keys
  FOR EACH ROW EXECUTE FUNCTION keyplane_count_changed_key();
