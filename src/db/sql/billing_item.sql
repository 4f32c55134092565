-- The feed item of a ledger row (the wire schema BillingTransactionItem, field by field in its
-- order): Saperly's billing_transaction, whose `data` its MCP server formats by transaction_type and
-- amount_cents (negative: money spent). A whitelist like a compiled serializer: nothing else of the
-- row reaches the feed. The time is printed as JavaScript's Date#toISOString does (UTC,
-- milliseconds), as keyplane_audit_item prints an event's. Rows older than the columns
-- spent_after_cents and cap_cents print null there.
CREATE OR REPLACE FUNCTION keyplane_billing_item(l spend_ledger) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT '{"type":"billing_transaction","id":"' || l.id::text
    || '","created_at":"' || to_char(l.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
    || '","createdAt":"' || to_char(l.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
    || '","data":{"transaction_type":"usage_debit","amount_cents":' || (-l.cost_cents)::text
    || ',"request_id":' || to_json(l.request_id)::text
    || ',"api_key_id":"' || l.api_key_id::text
    || '","spent_after_cents":' || coalesce(l.spent_after_cents::text, 'null')
    || ',"cap_cents":' || coalesce(l.cap_cents::text, 'null')
    || '}}'
$$;
