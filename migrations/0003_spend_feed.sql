ALTER TABLE "spend_ledger" ADD COLUMN "spent_after_cents" bigint;--> statement-breakpoint
ALTER TABLE "spend_ledger" ADD COLUMN "cap_cents" integer;--> statement-breakpoint
CREATE INDEX "spend_ledger_feed_idx" ON "spend_ledger" USING btree ("account_id","api_key_id","created_at" DESC NULLS FIRST,"id" DESC NULLS FIRST) WHERE "spend_ledger"."cost_cents" >= 0;