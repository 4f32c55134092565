CREATE TABLE "accounts" (
	"id" uuid PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"chain_seq" bigint DEFAULT 0 NOT NULL,
	"chain_prev" text DEFAULT '0000000000000000000000000000000000000000000000000000000000000000' NOT NULL,
	"chain_head" text DEFAULT '0000000000000000000000000000000000000000000000000000000000000000' NOT NULL
);
--> statement-breakpoint
CREATE TABLE "api_keys" (
	"id" uuid PRIMARY KEY NOT NULL,
	"account_id" uuid NOT NULL,
	"environment" text NOT NULL,
	"name" text NOT NULL,
	"agent_label" text,
	"line_id" uuid,
	"permissions" text NOT NULL,
	"monthly_cap_cents" integer,
	"monthly_spend_cents" bigint DEFAULT 0 NOT NULL,
	"spend_cycle_start" timestamp with time zone,
	"cycle_anchor" timestamp with time zone NOT NULL,
	"key_prefix" text NOT NULL,
	"token_hash" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"revoked_at" timestamp with time zone,
	"last_used_at" timestamp with time zone,
	"rotated_from" uuid,
	"agent_id" uuid NOT NULL,
	"created_by_service_key_id" uuid,
	"self_rotation" boolean DEFAULT false NOT NULL,
	"rotation_secret_hash" text,
	CONSTRAINT "api_keys_env_ck" CHECK ("api_keys"."environment" in ('test','live')),
	CONSTRAINT "api_keys_permissions_ck" CHECK ("api_keys"."permissions" in ('full','call_only','sms_only','read_only','legacy_full')),
	CONSTRAINT "api_keys_cap_ck" CHECK ("api_keys"."monthly_cap_cents" is null or ("api_keys"."monthly_cap_cents" > 0 and "api_keys"."monthly_cap_cents" <= 100000000))
);
--> statement-breakpoint
CREATE TABLE "child_key_counts" (
	"service_key_id" uuid NOT NULL,
	"shard" integer NOT NULL,
	"active" bigint NOT NULL,
	CONSTRAINT "child_key_counts_service_key_id_shard_pk" PRIMARY KEY("service_key_id","shard")
);
--> statement-breakpoint
CREATE TABLE "compliance_events" (
	"id" uuid PRIMARY KEY NOT NULL,
	"account_id" uuid NOT NULL,
	"seq" bigint,
	"prev_hash" text,
	"hash" text,
	"event_type" text NOT NULL,
	"environment" text,
	"actor_kind" text NOT NULL,
	"actor_key_id" uuid,
	"actor_key_prefix" text,
	"subject_key_id" uuid,
	"related_key_id" uuid,
	"request_id" text,
	"ip" text,
	"user_agent" text,
	"data" jsonb NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"item_json" text,
	CONSTRAINT "compliance_events_link_ck" CHECK (("compliance_events"."seq" is null and "compliance_events"."prev_hash" is null and "compliance_events"."hash" is null) or ("compliance_events"."seq" is not null and "compliance_events"."prev_hash" is not null and "compliance_events"."hash" is not null)),
	CONSTRAINT "compliance_events_item_ck" CHECK ("compliance_events"."item_json" is null or "compliance_events"."seq" is not null)
);
--> statement-breakpoint
CREATE TABLE "idempotency_keys" (
	"id" uuid PRIMARY KEY NOT NULL,
	"account_id" uuid NOT NULL,
	"service_key_id" uuid NOT NULL,
	"idempotency_key" text NOT NULL,
	"fingerprint" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"locked_at" timestamp with time zone,
	"completed_at" timestamp with time zone,
	"response_status" integer,
	"response_body" jsonb
);
--> statement-breakpoint
CREATE TABLE "service_keys" (
	"id" uuid PRIMARY KEY NOT NULL,
	"account_id" uuid NOT NULL,
	"environment" text NOT NULL,
	"name" text NOT NULL,
	"key_prefix" text NOT NULL,
	"token_hash" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"revoked_at" timestamp with time zone,
	"last_used_at" timestamp with time zone,
	"rotated_from" uuid,
	"lineage_id" uuid NOT NULL,
	CONSTRAINT "service_keys_env_ck" CHECK ("service_keys"."environment" in ('test','live'))
);
--> statement-breakpoint
CREATE TABLE "spend_ledger" (
	"id" uuid PRIMARY KEY NOT NULL,
	"account_id" uuid NOT NULL,
	"api_key_id" uuid NOT NULL,
	"request_id" text NOT NULL,
	"cost_cents" integer NOT NULL,
	"cycle_start" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	CONSTRAINT "spend_ledger_cost_ck" CHECK ("spend_ledger"."cost_cents" >= 0)
);
--> statement-breakpoint
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_account_id_accounts_id_fk" FOREIGN KEY ("account_id") REFERENCES "public"."accounts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_created_by_service_key_id_service_keys_id_fk" FOREIGN KEY ("created_by_service_key_id") REFERENCES "public"."service_keys"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "service_keys" ADD CONSTRAINT "service_keys_account_id_accounts_id_fk" FOREIGN KEY ("account_id") REFERENCES "public"."accounts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "spend_ledger" ADD CONSTRAINT "spend_ledger_api_key_id_api_keys_id_fk" FOREIGN KEY ("api_key_id") REFERENCES "public"."api_keys"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "api_keys_token_hash_uq" ON "api_keys" USING btree ("token_hash");--> statement-breakpoint
CREATE INDEX "api_keys_creator_active_idx" ON "api_keys" USING btree ("account_id","created_by_service_key_id","created_at" DESC NULLS FIRST,"id" DESC NULLS FIRST) WHERE "api_keys"."revoked_at" is null;--> statement-breakpoint
CREATE INDEX "api_keys_account_idx" ON "api_keys" USING btree ("account_id","created_at" DESC NULLS FIRST);--> statement-breakpoint
CREATE UNIQUE INDEX "api_keys_rotated_from_uq" ON "api_keys" USING btree ("rotated_from");--> statement-breakpoint
CREATE UNIQUE INDEX "compliance_events_chain_uq" ON "compliance_events" USING btree ("account_id","seq");--> statement-breakpoint
CREATE INDEX "compliance_events_unlinked_idx" ON "compliance_events" USING btree ("account_id","created_at","id") WHERE "compliance_events"."seq" is null;--> statement-breakpoint
CREATE INDEX "compliance_events_actor_idx" ON "compliance_events" USING btree ("account_id","actor_key_id","created_at" DESC NULLS FIRST,"id" DESC NULLS FIRST);--> statement-breakpoint
CREATE INDEX "compliance_events_subject_idx" ON "compliance_events" USING btree ("account_id","subject_key_id","created_at" DESC NULLS FIRST,"id" DESC NULLS FIRST);--> statement-breakpoint
CREATE INDEX "compliance_events_related_idx" ON "compliance_events" USING btree ("account_id","related_key_id","created_at" DESC NULLS FIRST,"id" DESC NULLS FIRST) WHERE "compliance_events"."related_key_id" is not null;--> statement-breakpoint
CREATE UNIQUE INDEX "idempotency_keys_scope_uq" ON "idempotency_keys" USING btree ("service_key_id","idempotency_key");--> statement-breakpoint
CREATE INDEX "idempotency_keys_created_idx" ON "idempotency_keys" USING btree ("created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "service_keys_token_hash_uq" ON "service_keys" USING btree ("token_hash");--> statement-breakpoint
CREATE INDEX "service_keys_account_idx" ON "service_keys" USING btree ("account_id","created_at" DESC NULLS FIRST,"id" DESC NULLS FIRST);--> statement-breakpoint
CREATE UNIQUE INDEX "service_keys_rotated_from_uq" ON "service_keys" USING btree ("rotated_from");--> statement-breakpoint
CREATE UNIQUE INDEX "spend_ledger_request_uq" ON "spend_ledger" USING btree ("api_key_id","request_id");--> statement-breakpoint
CREATE INDEX "spend_ledger_account_cycle_idx" ON "spend_ledger" USING btree ("account_id","cycle_start");