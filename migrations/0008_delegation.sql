ALTER TABLE "api_keys" ADD COLUMN "can_delegate" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "api_keys" ADD COLUMN "delegation_path" uuid[] DEFAULT '{}'::uuid[] NOT NULL;--> statement-breakpoint
ALTER TABLE "api_keys" ADD COLUMN "parent_agent_id" uuid;--> statement-breakpoint
ALTER TABLE "api_keys" ADD COLUMN "parent_key_id" uuid;--> statement-breakpoint
ALTER TABLE "api_keys" ADD COLUMN "has_delegated" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "api_keys" ADD COLUMN "suspended_by_agent_id" uuid;--> statement-breakpoint
CREATE INDEX "api_keys_parent_agent_idx" ON "api_keys" USING btree ("parent_agent_id","created_at" DESC NULLS FIRST) WHERE "api_keys"."parent_agent_id" is not null;--> statement-breakpoint
CREATE INDEX "api_keys_delegation_path_idx" ON "api_keys" USING gin ("delegation_path") WHERE cardinality("api_keys"."delegation_path") > 0;--> statement-breakpoint
CREATE INDEX "api_keys_suspended_by_idx" ON "api_keys" USING btree ("suspended_by_agent_id") WHERE "api_keys"."suspended_by_agent_id" is not null;--> statement-breakpoint
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_depth_ck" CHECK (cardinality("api_keys"."delegation_path") <= 3);