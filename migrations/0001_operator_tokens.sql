CREATE TABLE "operator_tokens" (
	"id" uuid PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"scope" text NOT NULL,
	"key_prefix" text NOT NULL,
	"token_hash" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"revoked_at" timestamp with time zone,
	CONSTRAINT "operator_tokens_scope_ck" CHECK ("operator_tokens"."scope" in ('admin','verify'))
);
--> statement-breakpoint
CREATE UNIQUE INDEX "operator_tokens_token_hash_uq" ON "operator_tokens" USING btree ("token_hash");--> statement-breakpoint
CREATE UNIQUE INDEX "operator_tokens_live_name_uq" ON "operator_tokens" USING btree ("name") WHERE "operator_tokens"."revoked_at" is null;