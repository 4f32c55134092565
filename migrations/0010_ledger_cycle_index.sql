DROP INDEX "spend_ledger_cycle_idx";--> statement-breakpoint
CREATE INDEX "spend_ledger_account_cycle_idx" ON "spend_ledger" USING btree ("account_id","cycle_start");