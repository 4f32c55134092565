CREATE TABLE "console_sessions" (
	"id_hash" text PRIMARY KEY NOT NULL,
	"operator_token_id" uuid,
	"operator_name" text NOT NULL,
	"csrf_token" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"last_seen_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "verify_activity" (
	"account_id" uuid NOT NULL,
	"key_id" uuid NOT NULL,
	"minute" timestamp with time zone NOT NULL,
	"outcome" text NOT NULL,
	"count" integer NOT NULL,
	CONSTRAINT "verify_activity_account_id_key_id_minute_outcome_pk" PRIMARY KEY("account_id","key_id","minute","outcome")
);
--> statement-breakpoint
CREATE INDEX "console_sessions_last_seen_idx" ON "console_sessions" USING btree ("last_seen_at");--> statement-breakpoint
CREATE INDEX "verify_activity_account_minute_idx" ON "verify_activity" USING btree ("account_id","minute");