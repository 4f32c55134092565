-- A rotated service key's successor manages the child keys its predecessors minted.
--
-- Until now a child key belonged to the one service key that minted it (created_by_service_key_id),
-- so rotating a service key stranded its fleet: the successor listed none of it, and got 404 on each
-- key, and once the old key's 60-second read grace ended no service key could list, change, revoke
-- or rotate those keys. Ownership now follows the rotation chain: every service key records its
-- chain's first key (lineage_id; its own id when it was created rather than rotated), and a child
-- key's created_by_service_key_id holds that lineage, whichever key of the chain minted it. The
-- existing indexes and the per-owner counts (child_key_counts) keep working unchanged, and a mint
-- racing a rotation cannot strand a key: it records the lineage, which the rotation does not change.
ALTER TABLE "service_keys" ADD COLUMN "lineage_id" uuid;--> statement-breakpoint
WITH RECURSIVE chain(id, lineage) AS (
  SELECT id, id FROM service_keys WHERE rotated_from IS NULL
  UNION ALL
  SELECT s.id, c.lineage FROM service_keys s JOIN chain c ON s.rotated_from = c.id
)
UPDATE service_keys s SET lineage_id = c.lineage FROM chain c WHERE c.id = s.id;--> statement-breakpoint
-- Defensive: a key whose predecessor row is missing starts a lineage of its own.
UPDATE service_keys SET lineage_id = id WHERE lineage_id IS NULL;--> statement-breakpoint
ALTER TABLE "service_keys" ALTER COLUMN "lineage_id" SET NOT NULL;--> statement-breakpoint
-- The children that successors minted pass to their lineage (child_key_counts follows through its
-- trigger on created_by_service_key_id).
UPDATE api_keys a SET created_by_service_key_id = s.lineage_id
  FROM service_keys s
 WHERE s.id = a.created_by_service_key_id AND s.lineage_id <> s.id;
