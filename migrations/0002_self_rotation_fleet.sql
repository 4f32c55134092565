ALTER TABLE "accounts" ADD COLUMN "reuse_reaction" text DEFAULT 'revoke_chain' NOT NULL;--> statement-breakpoint
ALTER TABLE "api_keys" ADD COLUMN "self_rotation_base_id" uuid;--> statement-breakpoint
CREATE UNIQUE INDEX "api_keys_agent_live_uq" ON "api_keys" USING btree ("agent_id") WHERE "api_keys"."revoked_at" is null;--> statement-breakpoint
ALTER TABLE "accounts" ADD CONSTRAINT "accounts_reuse_reaction_ck" CHECK ("accounts"."reuse_reaction" in ('revoke_chain','report'));