ALTER TABLE "api_keys" ADD COLUMN "expires_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "api_keys" ADD COLUMN "suspended_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "api_keys" ADD COLUMN "expiry_recorded_at" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "api_keys_expiry_due_idx" ON "api_keys" USING btree ("expires_at") WHERE "api_keys"."expires_at" is not null and "api_keys"."expiry_recorded_at" is null and "api_keys"."revoked_at" is null;